//! Seeded interruptions for the end-to-end suite: a small PRNG (SplitMix64, so a seed gives the same
//! kill points on every machine and build), the knobs the interruption test reads from the
//! environment, [`kill_at`], which SIGKILLs a running `orchestrate` at a drawn point, and the
//! [`Tally`] behind the figure line.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// The seed of the kill points unless `ORCHESTRATE_KILL_SEED` says otherwise.
pub const DEFAULT_SEED: u64 = 7;
/// Kills of `up` per target unless `ORCHESTRATE_KILLS` says otherwise (the CI form).
pub const DEFAULT_UP_KILLS: usize = 3;
/// Kills of `down` per target unless `ORCHESTRATE_KILLS` says otherwise (the CI form).
pub const DEFAULT_DOWN_KILLS: usize = 2;

/// A number from the environment variable `name`, or `default` when it is not set.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
        Err(_) => default,
    }
}

/// The seed: `ORCHESTRATE_KILL_SEED`, else [`DEFAULT_SEED`].
pub fn seed() -> u64 {
    env_number("ORCHESTRATE_KILL_SEED", DEFAULT_SEED)
}

/// Kills of `up` and of `down` per target: both `ORCHESTRATE_KILLS` when it is set (the full form
/// sets 20), else [`DEFAULT_UP_KILLS`] and [`DEFAULT_DOWN_KILLS`].
pub fn kills() -> (usize, usize) {
    match std::env::var("ORCHESTRATE_KILLS") {
        Ok(_) => {
            let kills = env_number("ORCHESTRATE_KILLS", 0);
            (kills, kills)
        }
        Err(_) => (DEFAULT_UP_KILLS, DEFAULT_DOWN_KILLS),
    }
}

/// SplitMix64 (Steele, Lea and Flood; the seeding generator of `java.util.SplittableRandom`):
/// small, seedable and the same everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The generator of `seed` for one stream (`stream` keeps two targets' draws apart).
    pub fn new(seed: u64, stream: &str) -> Rng {
        let salt = stream.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Rng(seed ^ salt)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A delay drawn uniformly from `[0, max]`, to the millisecond.
    pub fn delay_within(&mut self, max: Duration) -> Duration {
        let millis = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(self.next_u64() % (millis + 1))
    }
}

/// How a run given a kill point ended.
#[derive(Debug)]
pub enum Ended {
    /// SIGKILLed at the kill point, while it ran.
    Killed,
    /// It ended on its own before the kill point.
    Finished(ExitStatus),
}

/// SIGKILLs `child` once `delay` has passed since `started` (the moment it was spawned), unless it
/// ends first; reaps it either way. The wait is the kill point itself, not a synchronisation:
/// the child's exit is polled meanwhile so a run that ends early is not waited for.
pub fn kill_at(child: &mut Child, started: Instant, delay: Duration) -> Ended {
    loop {
        if let Some(status) = child.try_wait().expect("poll the run") {
            return Ended::Finished(status);
        }
        let elapsed = started.elapsed();
        if elapsed >= delay {
            break;
        }
        std::thread::sleep((delay - elapsed).min(Duration::from_millis(5)));
    }
    child.kill().expect("SIGKILL the run");
    let status = child.wait().expect("reap the killed run");
    use std::os::unix::process::ExitStatusExt;
    if status.signal() == Some(9) {
        Ended::Killed
    } else {
        // It ended between the last poll and the signal.
        Ended::Finished(status)
    }
}

/// Kills survived and attempted, per command, for the figure line.
#[derive(Debug, Default)]
pub struct Tally {
    pub up_killed: usize,
    pub down_killed: usize,
    /// Runs that ended on their own before their kill point (checked all the same, not counted).
    pub finished_first: usize,
    /// Kills after which the next run did not converge (each also fails the test).
    pub not_survived: usize,
}

impl Tally {
    /// `interruptions (TARGET): kills survived S/A (up U, down D), seed N`, and the runs that beat
    /// their kill point.
    pub fn figure(&self, target: &str, seed: u64) -> String {
        let attempted = self.up_killed + self.down_killed;
        format!(
            "interruptions ({target}): kills survived {}/{attempted} (up {}, down {}), seed {seed}; \
             {} run(s) finished before their kill point",
            attempted - self.not_survived,
            self.up_killed,
            self.down_killed,
            self.finished_first
        )
    }
}
