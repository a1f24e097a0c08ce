// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers over the PM entry points the checkpoint (source) and the
//! restore (target) sequence, in the order `kernel/power/hibernate.c` uses
//! them. Each step is a function that returns what undoes it.

use crate::bindings;
use kernel::prelude::*;

/// A device PM transition, as `pm_message_t` names it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Msg {
    /// Quiesce for an image (hibernation's snapshot).
    Freeze,
    /// Quiesce before jumping into another image.
    #[allow(dead_code, reason = "used by inflate_loader only")]
    Quiesce,
    /// Resume after an image was made, in the same kernel.
    #[allow(dead_code, reason = "used by self_migrate only")]
    Thaw,
    /// Resume inside a restored image.
    Restore,
    /// Undo a failed transition.
    Recover,
}

impl Msg {
    /// The C value.
    fn raw(self) -> bindings::pm_message_t {
        let event = match self {
            Msg::Freeze => bindings::PM_EVENT_FREEZE,
            Msg::Quiesce => bindings::PM_EVENT_QUIESCE,
            Msg::Thaw => bindings::PM_EVENT_THAW,
            Msg::Restore => bindings::PM_EVENT_RESTORE,
            Msg::Recover => bindings::PM_EVENT_RECOVER,
        };
        bindings::pm_message_t {
            event: event as i32,
        }
    }
}

/// Converts a kernel return value into a `Result`.
fn check(ret: i32) -> Result {
    if ret < 0 {
        Err(Error::from_errno(ret))
    } else {
        Ok(())
    }
}

/// Holds `system_transition_mutex` (no suspend or hibernation meanwhile).
pub(crate) struct SleepLock {
    flags: u32,
}

impl SleepLock {
    /// Takes the lock.
    pub(crate) fn lock() -> Self {
        // SAFETY: May sleep; called from process context.
        let flags = unsafe { bindings::lock_system_sleep() };
        Self { flags }
    }
}

impl Drop for SleepLock {
    fn drop(&mut self) {
        // SAFETY: Pairs with the `lock_system_sleep` in `lock`.
        unsafe { bindings::unlock_system_sleep(self.flags) };
    }
}

/// RCU grace periods expedited while held (`rcu_expedite_gp()`).
///
/// Freezing and resuming devices waits for grace periods (virtio-net's
/// freeze alone waits in `synchronize_net()`), each a few scheduler ticks
/// at normal pace; expedited, they end in microseconds, at the price of an
/// IPI to every online CPU: a bargain while the guest is stopped anyway.
/// The expediting count is kernel data, part of the image: a checkpoint
/// resumed on the target drops the guard there as well, so both sides end
/// balanced.
pub(crate) struct ExpeditedRcu;

impl ExpeditedRcu {
    /// Starts expediting.
    pub(crate) fn start() -> Self {
        // SAFETY: No preconditions; nests, and the drop undoes it.
        unsafe { bindings::rcu_expedite_gp() };
        Self
    }
}

impl Drop for ExpeditedRcu {
    fn drop(&mut self) {
        // SAFETY: Pairs with the `rcu_expedite_gp` in `start`.
        unsafe { bindings::rcu_unexpedite_gp() };
    }
}

/// Secondary CPUs taken offline; brought back on drop.
pub(crate) struct OfflineCpus {
    cpus: KVec<u32>,
}

impl OfflineCpus {
    /// Takes every online CPU but CPU 0 offline (the caller ends up on
    /// CPU 0). On failure the CPUs already taken offline come back.
    pub(crate) fn take() -> Result<Self> {
        let mut me = Self { cpus: KVec::new() };
        // SAFETY: Plain read of a variable fixed at boot.
        let nr = unsafe { bindings::nr_cpu_ids };
        for cpu in 1..nr {
            // SAFETY: `cpu` is a valid CPU number; may sleep.
            match unsafe { bindings::remove_cpu(cpu) } {
                0 => me.cpus.push(cpu, GFP_KERNEL)?,
                // Already offline (or not present).
                1 => {}
                err => {
                    pr_warn!("cannot take CPU {} offline (errno {})\n", cpu, -err);
                    return Err(Error::from_errno(err));
                }
            }
        }
        Ok(me)
    }
}

impl Drop for OfflineCpus {
    fn drop(&mut self) {
        for &cpu in self.cpus.iter() {
            // SAFETY: `cpu` was taken offline by `take`; may sleep.
            let ret = unsafe { bindings::add_cpu(cpu) };
            if ret != 0 {
                pr_warn!("cannot bring CPU {} back online (errno {})\n", cpu, -ret);
            }
        }
    }
}

/// `dpm_suspend_start()`: prepare and suspend phases of every device.
pub(crate) fn dpm_suspend_start(msg: Msg) -> Result {
    // SAFETY: Process context, system sleep lock held by the caller.
    check(unsafe { bindings::dpm_suspend_start(msg.raw()) })
}

/// `dpm_suspend_end()`: late and noirq phases.
pub(crate) fn dpm_suspend_end(msg: Msg) -> Result {
    // SAFETY: As for `dpm_suspend_start`, after it succeeded.
    check(unsafe { bindings::dpm_suspend_end(msg.raw()) })
}

/// `dpm_resume_start()`: undoes `dpm_suspend_end()`.
pub(crate) fn dpm_resume_start(msg: Msg) {
    // SAFETY: After `dpm_suspend_end`, with interrupts enabled.
    unsafe { bindings::dpm_resume_start(msg.raw()) };
}

/// `dpm_resume_end()`: undoes `dpm_suspend_start()`.
pub(crate) fn dpm_resume_end(msg: Msg) {
    // SAFETY: After `dpm_suspend_start`.
    unsafe { bindings::dpm_resume_end(msg.raw()) };
}

/// Disables interrupts on this CPU.
pub(crate) fn irqs_off() {
    // SAFETY: `cli` only clears IF; the caller re-enables with `irqs_on`.
    unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
}

/// Enables interrupts on this CPU.
pub(crate) fn irqs_on() {
    // SAFETY: Undoes `irqs_off`.
    unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
}

/// `syscore_suspend()`: timekeeping, interrupt controllers, ... (irqs off).
pub(crate) fn syscore_suspend() -> Result {
    // SAFETY: Called with interrupts disabled on the only online CPU.
    check(unsafe { bindings::syscore_suspend() })
}

/// `syscore_resume()`: undoes `syscore_suspend()` (irqs off).
pub(crate) fn syscore_resume() {
    // SAFETY: After `syscore_suspend`, interrupts still disabled.
    unsafe { bindings::syscore_resume() };
}
