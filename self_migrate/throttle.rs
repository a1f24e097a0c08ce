// SPDX-License-Identifier: GPL-2.0

//! Guest-side auto-converge: slowing down the tasks that dirty memory.
//!
//! When a workload dirties memory faster than the link sends it, pre-copy
//! never converges. QEMU's auto-converge then takes CPU time away from the
//! whole vCPU; inside the guest we can aim better. The paging tracker
//! knows which address spaces the dirty pages belong to; every thread of
//! the processes behind the heaviest of them is moved to `SCHED_DEADLINE`
//! with a CPU-bandwidth reservation, which the scheduler enforces: the
//! thread runs at most `runtime` in every `period` (500 ms), and waits for
//! the rest.
//!
//! The reservation is the smallest one, 50 us per period, at once. The
//! scheduler enforces a runtime at the tick, so each change of a thread's
//! reservation lets it overrun by up to a tick, which for a task writing
//! one word per page is thousands of pages, and a change made while the
//! thread pays back an earlier overrun gives it a fresh runtime at an
//! instant no settle time bounds. A reservation computed from the thread's
//! CPU share and divided by sixteen each round that still did not converge
//! took three changes in every benchmark run, and a checkpoint sometimes
//! caught the last one's burst (2,800-4,000 pages staged). One change
//! costs one burst at once and one at the end of the first period; after
//! that the overrun is paid back by a deadline pushed periods away. A
//! thread already throttled is not set again. The threads get
//! `SCHED_FLAG_RESET_ON_FORK` (their children start with normal
//! scheduling), and their old policy, nice value and real-time priority
//! come back when the migration ends, however it ends (on the target,
//! after the resume).

use crate::bindings;
use crate::shim;
use kernel::prelude::*;

/// Most threads throttled at once.
const MAX_THREADS: usize = 256;
/// The reservation period, in nanoseconds.
const PERIOD_NS: u64 = 500_000_000;
/// How long after a throttling its threads may still write in bursts.
///
/// The scheduler enforces a reservation's runtime at the tick, so a thread
/// can overrun it by up to a tick (4 ms at `HZ=250`): for a task writing
/// one word per page, thousands of pages. A thread entering
/// `SCHED_DEADLINE` starts with a full runtime, and gets another at the end
/// of its first period; the overrun is paid back after that, by a deadline
/// pushed periods away. So one period, plus two ticks of margin at the
/// lowest `HZ` (100).
pub(crate) const SETTLE_NS: u64 = PERIOD_NS + 20_000_000;
/// The smallest runtime per period, in nanoseconds.
const MIN_RUNTIME_NS: u64 = 50_000;
/// `SCHED_DEADLINE`.
const SCHED_DEADLINE: u32 = 6;
/// `SCHED_FLAG_RESET_ON_FORK`.
const RESET_ON_FORK: u64 = 1;

/// One throttled thread and what to give back.
struct Throttled {
    task: *mut bindings::task_struct,
    /// The address space it was listed for (compared only).
    mm: *mut bindings::mm_struct,
    policy: u32,
    nice: i32,
    rt_priority: u32,
    /// The reservation in force, nanoseconds per period (0: none yet).
    runtime: u64,
}

/// The throttled threads.
pub(crate) struct Throttle {
    threads: KVVec<Throttled>,
    /// The largest share in force, in basis points of a CPU (0: not
    /// throttling).
    share: u64,
}

// SAFETY: The list holds counted task references, usable from any thread.
unsafe impl Send for Throttle {}

impl Throttle {
    /// Nothing throttled, room for [`MAX_THREADS`].
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            threads: KVVec::with_capacity(MAX_THREADS, GFP_KERNEL)?,
            share: 0,
        })
    }

    /// The largest share of a CPU a throttled thread keeps, in basis
    /// points (0: none).
    pub(crate) fn share(&self) -> u64 {
        self.share
    }

    /// How many threads are throttled.
    pub(crate) fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Throttles every thread of the processes using one of `mms` that is
    /// not throttled yet, with the smallest reservation (adding to those
    /// throttled already, which are left as they are). A thread whose
    /// policy cannot be changed is left alone. Process context. Returns the
    /// largest share now in force, in basis points.
    pub(crate) fn tighten(&mut self, mms: &[*mut bindings::mm_struct]) -> u64 {
        self.add_threads(mms);
        for t in self.threads.iter_mut().filter(|t| t.runtime == 0) {
            t.runtime = MIN_RUNTIME_NS;
            let attr = bindings::sched_attr {
                size: core::mem::size_of::<bindings::sched_attr>() as u32,
                sched_policy: SCHED_DEADLINE,
                sched_flags: RESET_ON_FORK,
                sched_runtime: t.runtime,
                sched_deadline: PERIOD_NS,
                sched_period: PERIOD_NS,
                ..Default::default()
            };
            // SAFETY: We hold a reference on the task; `attr` is complete.
            let ret = unsafe { bindings::sched_setattr_nocheck(t.task, &attr) };
            if ret != 0 {
                pr_info!("cannot throttle a thread (errno {}); leaving it\n", -ret);
            }
        }
        let largest = self.threads.iter().map(|t| t.runtime).max().unwrap_or(0);
        self.share = (largest * 10_000).div_ceil(PERIOD_NS);
        self.share
    }

    /// Whether [`Self::tighten`] would change anything for `mms`: one of
    /// them has no thread throttled yet.
    pub(crate) fn can_tighten(&self, mms: &[*mut bindings::mm_struct]) -> bool {
        mms.iter()
            .any(|&mm| !self.threads.iter().any(|t| t.mm == mm))
    }

    /// Lists the threads of the processes using `mms` that are not listed
    /// yet, with a reference and their scheduling parameters.
    fn add_threads(&mut self, mms: &[*mut bindings::mm_struct]) {
        shim::rcu_read_lock();
        let init = core::ptr::addr_of_mut!(bindings::init_task);
        let mut p = shim::next_task(init);
        while p != init {
            let mut t = p;
            while !t.is_null() {
                // Under RCU a listed task stays valid; `mm` is only
                // compared, never followed.
                let (mm, sched) = (shim::task_mm(t), shim::task_sched(t));
                let policy = sched.policy;
                let listed = self.threads.iter().any(|x| x.task == t);
                if !mm.is_null()
                    && mms.contains(&mm)
                    && policy != SCHED_DEADLINE
                    && !listed
                    && self.threads.len() < self.threads.capacity()
                {
                    shim::get_task(t);
                    // Within capacity: no allocation.
                    let _ = self.threads.push(
                        Throttled {
                            task: t,
                            mm,
                            policy,
                            nice: sched.nice,
                            rt_priority: sched.rt_priority,
                            runtime: 0,
                        },
                        GFP_NOWAIT,
                    );
                }
                t = shim::next_thread(t);
            }
            p = shim::next_task(p);
        }
        shim::rcu_read_unlock();
    }

    /// Gives every throttled thread its scheduling back and drops the
    /// references. Process context.
    pub(crate) fn release(&mut self) {
        for t in self.threads.iter() {
            let attr = bindings::sched_attr {
                size: core::mem::size_of::<bindings::sched_attr>() as u32,
                sched_policy: t.policy,
                sched_nice: t.nice,
                sched_priority: t.rt_priority,
                ..Default::default()
            };
            // SAFETY: We hold a reference on the task; `attr` is complete.
            // A task that exited meanwhile just ignores it.
            unsafe { bindings::sched_setattr_nocheck(t.task, &attr) };
            shim::put_task(t.task);
        }
        // SAFETY: Every element was released above and holds nothing that
        // needs dropping; 0 is within capacity.
        unsafe { self.threads.set_len(0) };
        self.share = 0;
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        self.release();
    }
}
