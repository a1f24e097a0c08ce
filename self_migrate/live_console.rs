// SPDX-License-Identifier: GPL-2.0

//! The console kept live through the checkpoint.
//!
//! Freezing a serial console's port (`uart_suspend_port()`) stops the
//! console (`console_stop()`: a flush of pending output and an SRCU grace
//! period) and shuts the port down, its interrupt freed; the way back starts
//! both again the same way. Under TCG that was 3.2 ms of the source's
//! device freeze and 2 ms of the target's restore, and none of it serves
//! the image: on the target the port is another device, freshly reset, that
//! needs its registers written whatever state its driver saved.
//!
//! The kernel keeps consoles alive across suspend when asked to (the
//! `no_console_suspend` parameter, `console_suspend_enabled`, meant for
//! debugging suspend): the serial core then only stops and restarts a
//! console port's reception and rewrites its line settings on resume
//! (`uart_resume_port()` calls `set_termios`, which writes the interrupt
//! enable, line control, divisor, FIFO and modem control registers: all the
//! state an 8250 has, so a reset UART on the target comes back whole), and
//! the PNP layer leaves a console's device enabled. [`LiveConsole`] turns
//! that on for the checkpoint and restores the setting when dropped: on the
//! source after the devices' thaw, in the image on the target after their
//! restore (the setting is kernel data, part of the image).

use crate::bindings;

/// Consoles kept alive through the PM phases; the setting before is
/// restored on drop.
pub(crate) struct LiveConsole {
    was: bool,
}

impl LiveConsole {
    /// Keeps consoles alive through the PM phases from now on.
    pub(crate) fn keep() -> Self {
        let var = core::ptr::addr_of_mut!(bindings::console_suspend_enabled);
        // SAFETY: A plain boolean the kernel exports (the parameter
        // `no_console_suspend` sets it), read by the PM paths of consoles
        // and written only here and by the parameter's sysfs file.
        let was = unsafe { core::ptr::read_volatile(var) };
        // SAFETY: As above.
        unsafe { core::ptr::write_volatile(var, false) };
        Self { was }
    }
}

impl Drop for LiveConsole {
    fn drop(&mut self) {
        let var = core::ptr::addr_of_mut!(bindings::console_suspend_enabled);
        // SAFETY: As in `keep`.
        unsafe { core::ptr::write_volatile(var, self.was) };
    }
}
