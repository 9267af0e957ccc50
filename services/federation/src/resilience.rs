//! A binding's resilience (DR tier, toleration, singleton, failback order):
//! the kernel's [`kernel::resilience`], shared with apps, which takes the
//! same settings on an application's placement.

pub use kernel::resilience::{DEFAULT_TOLERATION, DrTier, Failback, Resilience};
