// SPDX-License-Identifier: GPL-2.0

//! A rehearsal of a migration's device and system-core transitions, run
//! once before the migration so that their code has run before the
//! downtime.
//!
//! An emulator that translates guest code (QEMU's TCG) translates each
//! block the first time it runs. The checkpoint's device freeze, the system
//! core's suspend and resume and the devices' way back run once per
//! migration, so under TCG their translation fell into the downtime: a
//! second checkpoint of the same guest took 9 ms where the first took 20.
//! The translations stay valid while the code's frames are not written,
//! and the target's loader runs the same kernel build at the same
//! addresses, so a rehearsal there serves the image it will resume. See
//! `Documentation/selfmig/design.rst`, "Rehearsals".

use crate::failure::Failure;
use crate::pm::{self, Msg, OfflineCpus};
use crate::proto::handoff::tsc_delta_us;
use crate::tsc;
use kernel::prelude::*;

/// How long each step of a rehearsal took, in microseconds.
#[derive(Clone, Copy, Default)]
pub(crate) struct Times {
    /// Secondary CPUs taken offline.
    pub(crate) cpus: u64,
    /// Devices frozen (`dpm_suspend_start()`).
    pub(crate) frozen: u64,
    /// Their late and noirq phases (`dpm_suspend_end()`).
    pub(crate) late: u64,
    /// Interrupts off: the system core suspended and resumed.
    pub(crate) core: u64,
    /// The devices' noirq and early phases back (`dpm_resume_start()`).
    pub(crate) early: u64,
    /// The devices back (`dpm_resume_end()`) and the CPUs online.
    pub(crate) back: u64,
}

impl Times {
    /// From the first step to the last.
    pub(crate) fn total(&self) -> u64 {
        self.cpus + self.frozen + self.late + self.core + self.early + self.back
    }

    /// Logs the steps, as a rehearsal of `what`.
    pub(crate) fn log(&self, what: &str) {
        pr_info!(
            "rehearsed {} in {} us: CPUs offline {}, devices frozen {}, late {}, system core {} (interrupts off), devices back {} (noirq/early) and {}\n",
            what,
            self.total(),
            self.cpus,
            self.frozen,
            self.late,
            self.core,
            self.early,
            self.back
        );
    }
}

/// Steps timed by the time-stamp counter.
struct Clock {
    /// The counter's frequency.
    khz: u64,
    /// The reading at the last lap.
    last: u64,
}

impl Clock {
    /// Starts timing.
    fn start() -> Self {
        Self {
            khz: tsc::khz(),
            last: tsc::rdtsc(),
        }
    }

    /// Microseconds since the last lap.
    fn lap(&mut self) -> u64 {
        let now = tsc::rdtsc();
        let us = tsc_delta_us(self.last, now, self.khz);
        self.last = now;
        us
    }
}

/// Runs the transitions once: secondary CPUs offline, every device frozen
/// (`PMSG_FREEZE`) through its late and noirq phases, interrupts off, the
/// system core suspended, `core`, the system core resumed, interrupts on,
/// every device back with `back` (`Msg::Thaw` on the source, as after a
/// checkpoint; `Msg::Restore` on the target, as in a resumed image) and the
/// CPUs online again. Nothing is saved in between.
///
/// The caller holds the system sleep lock ([`pm::SleepLock`]). On failure
/// every step taken is undone (`PMSG_RECOVER`) and the failure says which
/// step refused.
pub(crate) fn rehearse(back: Msg, core: impl FnOnce()) -> Result<Times, Failure> {
    let mut t = Times::default();
    let mut clock = Clock::start();
    let cpus =
        OfflineCpus::take().map_err(|e| Failure::new(e, "cannot take secondary CPUs offline"))?;
    t.cpus = clock.lap();
    if let Err(e) = pm::dpm_suspend_start(Msg::Freeze) {
        pm::dpm_resume_end(Msg::Recover);
        return Err(Failure::new(
            e,
            "a device refused to freeze (dpm_suspend_start)",
        ));
    }
    t.frozen = clock.lap();
    if let Err(e) = pm::dpm_suspend_end(Msg::Freeze) {
        pm::dpm_resume_start(Msg::Recover);
        pm::dpm_resume_end(Msg::Recover);
        return Err(Failure::new(e, "dpm_suspend_end failed"));
    }
    t.late = clock.lap();
    pm::irqs_off();
    let suspended = pm::syscore_suspend();
    if suspended.is_ok() {
        core();
        pm::syscore_resume();
    }
    pm::irqs_on();
    t.core = clock.lap();
    let msg = match suspended {
        Ok(()) => back,
        Err(_) => Msg::Recover,
    };
    pm::dpm_resume_start(msg);
    t.early = clock.lap();
    pm::dpm_resume_end(msg);
    drop(cpus);
    t.back = clock.lap();
    suspended.map_err(|e| Failure::new(e, "syscore_suspend failed"))?;
    Ok(t)
}
