//! The fence's protocol, model-checked with `stateright`: two hosts, each
//! with its `interlock`, keeper and COMMAND; etcd's lease; renewals that
//! can be delayed or lost, responses that can be lost; pauses of any
//! length; crashes of `interlock` or of the whole host; clocks that drift.
//! The holder's decisions are the code's (`interlock_fence::protocol`),
//! with the code's `Timing`; see the crate docs for the abstraction.
//!
//! Invariant: never two COMMANDs running at once. The checker explores
//! every interleaving up to a horizon of three TTLs (36 ticks).

use std::time::{Duration, Instant};

use interlock_fence::protocol::{stop_deadline, Holder, Keeper, Micros};
use interlock_fence::timing::{Timing, MAX_CLOCK_DRIFT_PPM};
use stateright::{Checker, Model, Property};

/// Ticks per TTL: one tick is `ttl / 12`, so the code's `Timing::for_ttl`
/// gives renew_every = 2, fence_after = 4, stop_within = 2 ticks.
const TICKS_PER_TTL: u64 = 12;

/// The last tick explored.
const HORIZON: u8 = 36;

#[derive(Debug, Clone)]
struct Fence {
    timing: Timing,
    /// One tick, in microseconds.
    tick: Micros,
    /// The lease's TTL in ticks (rounded down: conservative).
    ttl: u8,
    /// Whether `interlock` self-fences.
    self_fence: bool,
    /// Whether a keeper enforces the deadline.
    keeper: bool,
    /// How many ticks a host's clock may fall behind etcd's.
    max_lag: u8,
    /// Whether `interlock` alone can crash.
    interlock_crashes: bool,
    /// Whether `interlock` can pause (SIGSTOP, a frozen process).
    interlock_pauses: bool,
    /// The last tick explored.
    horizon: u8,
}

impl Fence {
    fn new(timing: Timing) -> Fence {
        let tick = u64::try_from(timing.ttl.as_micros()).unwrap() / TICKS_PER_TTL;
        let ttl = u8::try_from(u64::try_from(timing.ttl.as_micros()).unwrap() / tick).unwrap();
        // The drift over a whole TTL is far less than one tick: one tick of
        // lag over the horizon over-approximates it.
        let drift_per_ttl =
            u64::try_from(timing.ttl.as_micros()).unwrap() * MAX_CLOCK_DRIFT_PPM / 1_000_000;
        assert!(
            drift_per_ttl < tick,
            "drift {drift_per_ttl} µs >= a tick {tick} µs"
        );
        Fence {
            timing,
            tick,
            ttl,
            self_fence: true,
            keeper: true,
            max_lag: 1,
            interlock_crashes: true,
            interlock_pauses: true,
            horizon: HORIZON,
        }
    }

    /// The code's timing, for the default TTL.
    fn code() -> Fence {
        Fence::new(Timing::default())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Proc {
    Alive,
    Paused,
    Dead,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Cmd {
    Idle,
    Running,
    /// Fenced: SIGQUIT sent, surely gone by `deadline` (host clock, µs).
    Stopping {
        deadline: Micros,
    },
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Host {
    interlock: Proc,
    cmd: Cmd,
    holder: Option<Holder>,
    /// None: no keeper (crashed with the host, or absent in a variant).
    keeper: Option<Keeper>,
    /// Ticks this host's clock is behind etcd's.
    lag: u8,
    /// A renewal request in flight: when it was sent (host clock, ticks).
    req: Option<u8>,
    /// A response in flight: the request's send time, and success.
    resp: Option<(u8, bool)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct State {
    /// etcd's clock, in ticks.
    time: u8,
    hosts: [Host; 2],
    /// The key's holder and its lease's expiry (etcd's clock).
    key: Option<(u8, u8)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Tick,
    Drift(usize),
    Acquire(usize),
    Send(usize),
    Deliver(usize),
    DropRequest(usize),
    DropResponse(usize),
    Receive(usize),
    Fence(usize),
    StopDone(usize),
    Pause(usize),
    Resume(usize),
    CrashInterlock(usize),
    CrashHost(usize),
}

impl State {
    fn local(&self, h: usize) -> u8 {
        self.time - self.hosts[h].lag
    }

    fn running(&self) -> usize {
        self.hosts
            .iter()
            .filter(|h| matches!(h.cmd, Cmd::Running | Cmd::Stopping { .. }))
            .count()
    }
}

impl Fence {
    fn us(&self, ticks: u8) -> Micros {
        u64::from(ticks) * self.tick
    }

    /// Whether someone on host `h` must fence now: `interlock` if alive
    /// (not paused, not dead), or the keeper.
    fn fence_due(&self, s: &State, h: usize) -> bool {
        let host = &s.hosts[h];
        let now = self.us(s.local(h));
        if host.cmd != Cmd::Running {
            return false;
        }
        let by_interlock = self.self_fence
            && host.interlock == Proc::Alive
            && host
                .holder
                .is_some_and(|hd| hd.must_fence(now, &self.timing));
        let by_keeper = host.keeper.is_some_and(|k| k.must_fence(now, &self.timing));
        by_interlock || by_keeper
    }

    fn stop_due(&self, s: &State, h: usize) -> bool {
        matches!(s.hosts[h].cmd, Cmd::Stopping { deadline } if self.us(s.local(h)) >= deadline)
    }
}

impl Model for Fence {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let host = Host {
            interlock: Proc::Alive,
            cmd: Cmd::Idle,
            holder: None,
            keeper: None,
            lag: 0,
            req: None,
            resp: None,
        };
        vec![State {
            time: 0,
            hosts: [host, host],
            key: None,
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        // Time passes unless a deadline is due now: a fence (by a live
        // interlock or the keeper) or the end of a stop.
        if s.time < self.horizon && !(0..2).any(|h| self.fence_due(s, h) || self.stop_due(s, h)) {
            actions.push(Action::Tick);
        }
        for h in 0..2 {
            let host = &s.hosts[h];
            let holding = matches!(host.cmd, Cmd::Running | Cmd::Stopping { .. });
            // Drift matters only between a send and a deadline: while
            // COMMAND runs.
            if host.cmd == Cmd::Running && host.lag < self.max_lag && s.time > host.lag {
                actions.push(Action::Drift(h));
            }
            let key_free = s.key.is_none_or(|(_, expiry)| s.time >= expiry);
            if host.cmd == Cmd::Idle && host.interlock == Proc::Alive && key_free {
                actions.push(Action::Acquire(h));
            }
            if host.cmd == Cmd::Running
                && host.interlock == Proc::Alive
                && host.req.is_none()
                && host.resp.is_none()
                && host
                    .holder
                    .is_some_and(|hd| self.us(s.local(h)) >= hd.next_renewal_at(&self.timing))
            {
                actions.push(Action::Send(h));
            }
            if host.req.is_some() {
                actions.push(Action::Deliver(h));
                actions.push(Action::DropRequest(h));
            }
            if host.resp.is_some() {
                actions.push(Action::DropResponse(h));
                if host.interlock == Proc::Alive {
                    actions.push(Action::Receive(h));
                }
            }
            if self.fence_due(s, h) {
                actions.push(Action::Fence(h));
            }
            if matches!(host.cmd, Cmd::Stopping { .. }) {
                actions.push(Action::StopDone(h));
            }
            if host.cmd == Cmd::Running {
                match host.interlock {
                    Proc::Alive if self.interlock_pauses => actions.push(Action::Pause(h)),
                    Proc::Alive => {}
                    Proc::Paused => actions.push(Action::Resume(h)),
                    Proc::Dead => {}
                }
                if self.interlock_crashes && host.interlock != Proc::Dead {
                    actions.push(Action::CrashInterlock(h));
                }
            }
            if holding {
                actions.push(Action::CrashHost(h));
            }
        }
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        let mut n = s.clone();
        match action {
            Action::Tick => n.time += 1,
            Action::Drift(h) => n.hosts[h].lag += 1,
            Action::Acquire(h) => {
                // The transaction sent, handled and answered at once: the
                // worst case (a delay only starts COMMAND later and the
                // lease later).
                let sent = self.us(s.local(h));
                n.key = Some((h as u8, s.time + self.ttl));
                let host = &mut n.hosts[h];
                host.holder = Some(Holder::acquired(sent));
                host.keeper = self.keeper.then_some(Keeper { last_ok_sent: sent });
                host.cmd = Cmd::Running;
            }
            Action::Send(h) => {
                let now = s.local(h);
                let host = &mut n.hosts[h];
                host.req = Some(now);
                host.holder.as_mut()?.renewal_sent(self.us(now));
            }
            Action::Deliver(h) => {
                let sent = n.hosts[h].req.take()?;
                let ok =
                    matches!(s.key, Some((k, expiry)) if usize::from(k) == h && s.time < expiry);
                if ok {
                    n.key = Some((h as u8, s.time + self.ttl));
                }
                // One response slot: a newer renewal is sent only once the
                // previous one is answered or lost.
                n.hosts[h].resp = Some((sent, ok));
            }
            Action::DropRequest(h) => n.hosts[h].req = None,
            Action::DropResponse(h) => n.hosts[h].resp = None,
            Action::Receive(h) => {
                let host = &mut n.hosts[h];
                let (sent, ok) = host.resp.take()?;
                let heartbeat = host.holder.as_mut()?.on_renewal_result(self.us(sent), ok);
                if let (Some(hb), Some(k)) = (heartbeat, host.keeper.as_mut()) {
                    k.on_heartbeat(hb);
                }
            }
            Action::Fence(h) => {
                let now = self.us(s.local(h));
                n.hosts[h].cmd = Cmd::Stopping {
                    deadline: stop_deadline(now, &self.timing),
                };
            }
            Action::StopDone(h) => n.hosts[h].cmd = Cmd::Stopped,
            Action::Pause(h) => n.hosts[h].interlock = Proc::Paused,
            Action::Resume(h) => n.hosts[h].interlock = Proc::Alive,
            Action::CrashInterlock(h) => n.hosts[h].interlock = Proc::Dead,
            Action::CrashHost(h) => {
                // Requests already on the wire may still reach etcd.
                let host = &mut n.hosts[h];
                host.interlock = Proc::Dead;
                host.keeper = None;
                host.cmd = Cmd::Stopped;
            }
        }
        // Once COMMAND no longer runs, the host's interlock, keeper and
        // renewals can no longer matter (only a request on the wire can):
        // forget them, so that equivalent states are one.
        for host in &mut n.hosts {
            if matches!(host.cmd, Cmd::Stopping { .. } | Cmd::Stopped) {
                host.interlock = Proc::Dead;
                host.holder = None;
                host.keeper = None;
                host.resp = None;
            }
            if host.cmd == Cmd::Stopped {
                host.lag = 0;
            }
        }
        Some(n)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("never two COMMANDs", |_, s: &State| s.running() <= 1),
            Property::sometimes("a host runs COMMAND", |_, s: &State| s.running() == 1),
            Property::sometimes("the other host takes over", |_, s: &State| {
                s.hosts.iter().all(|h| h.cmd != Cmd::Idle) && s.running() == 1
            }),
        ]
    }

    fn within_boundary(&self, s: &State) -> bool {
        s.time <= self.horizon
    }
}

/// The two hosts are interchangeable: a state and its mirror are one.
fn representative(s: &State) -> State {
    let key = |h: &Host| {
        (
            h.interlock as u8,
            h.cmd,
            h.holder.map(|x| (x.last_ok_sent, x.last_sent)),
            h.keeper.map(|k| k.last_ok_sent),
            h.lag,
            h.req,
            h.resp,
        )
    };
    let mut n = s.clone();
    if key(&s.hosts[1]) < key(&s.hosts[0]) {
        n.hosts.swap(0, 1);
        n.key = s.key.map(|(h, expiry)| (1 - h, expiry));
    }
    n
}

type Trace = Vec<(State, Option<Action>)>;

/// Checks `model` exhaustively; returns the counterexample to the safety
/// invariant, if any, and whether a takeover was seen, after printing the
/// figures.
fn check(name: &str, model: Fence) -> (Option<Trace>, bool) {
    let started = Instant::now();
    let checker = model
        .checker()
        .threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
        .symmetry_fn(representative)
        .spawn_bfs()
        .join();
    let elapsed = started.elapsed();
    println!(
        "{name}: {} states ({} unique), max depth {}, {:.2?}",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        elapsed
    );
    assert!(checker.is_done());
    assert!(
        checker.discovery("a host runs COMMAND").is_some(),
        "{name}: vacuous model"
    );
    let counterexample = checker.discovery("never two COMMANDs").map(|p| {
        let path = p.into_vec();
        let actions: Vec<_> = path.iter().filter_map(|(_, a)| *a).collect();
        println!("{name}: counterexample: {actions:?}");
        println!("{name}: last state: {:?}", path.last().unwrap().0);
        path
    });
    let takeover = checker.discovery("the other host takes over").is_some();
    (counterexample, takeover)
}

#[test]
fn the_code_timing_is_safe() {
    let model = Fence::code();
    assert_eq!(
        (
            model.ttl,
            model.timing.renew_every.as_micros() as u64 / model.tick
        ),
        (12, 2)
    );
    let (counterexample, takeover) = check("code timing", model);
    assert!(counterexample.is_none());
    // Not vacuous: a takeover after a crash, pause or partition happens.
    assert!(takeover);
}

#[test]
fn without_the_margin_the_checker_finds_a_double_start() {
    // Fence only when the lease would lapse.
    let mut model = Fence::code();
    model.timing.fence_after = model.timing.ttl;
    assert!(check("fence_after = ttl", model).0.is_some());

    // The stop's duration not accounted for: fence at ttl - stop_within.
    let mut model = Fence::code();
    model.timing.fence_after = model.timing.ttl - model.timing.stop_within;
    assert!(check("fence_after = ttl - stop_within", model).0.is_some());
}

#[test]
fn the_drift_matters_for_a_one_tick_margin() {
    // A margin of one tick: safe with exact clocks, unsafe with the
    // drift the model allows.
    let mut model = Fence::code();
    model.timing.fence_after =
        model.timing.ttl - model.timing.stop_within - Duration::from_micros(model.tick);
    model.max_lag = 0;
    assert!(check("one-tick margin, exact clocks", model.clone())
        .0
        .is_none());
    model.max_lag = 1;
    assert!(check("one-tick margin, drifting clocks", model).0.is_some());
}

#[test]
fn without_the_self_fence_the_checker_finds_a_double_start() {
    let mut model = Fence::code();
    model.self_fence = false;
    model.keeper = false;
    assert!(check("no self-fence, no keeper", model).0.is_some());
}

#[test]
fn without_the_keeper_the_checker_finds_a_double_start() {
    let mut model = Fence::code();
    model.keeper = false;
    // Killed, never paused: the counterexample must go through the kill
    // (with both allowed, the checker may return either).
    model.interlock_pauses = false;
    let path = check("no keeper, interlock killed", model.clone())
        .0
        .expect("a counterexample");
    // The holder's interlock was killed: nobody fenced it.
    let (last, _) = path.last().unwrap();
    assert!(last
        .hosts
        .iter()
        .any(|h| h.cmd == Cmd::Running && h.interlock == Proc::Dead));
    // Nor when it was only paused (SIGSTOP, of any length).
    model.interlock_crashes = false;
    model.interlock_pauses = true;
    let path = check("no keeper, interlock paused", model)
        .0
        .expect("a counterexample");
    let (last, _) = path.last().unwrap();
    assert!(last
        .hosts
        .iter()
        .any(|h| h.cmd == Cmd::Running && h.interlock == Proc::Paused));
}
