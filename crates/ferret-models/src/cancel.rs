//! Cooperative cancellation. Long work (a pipeline's stages, a cross-encoder's pairs, an LLM's
//! prompt chunks and decoding steps) checks a [`Cancel`] between steps and stops early once the
//! request it serves has been given up (the server's timeout), so that its worker is freed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A shared "stop now" signal: set by [`Cancel::cancel`], or by the clock once a deadline
/// passes. Cloning shares it; the default is never cancelled.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Option<Arc<Signal>>);

#[derive(Debug)]
struct Signal {
    flag: AtomicBool,
    deadline: Option<Instant>,
}

impl Cancel {
    /// Never cancelled: batch runs, tools, tests.
    pub fn never() -> Self {
        Cancel(None)
    }

    /// Cancelled by [`Cancel::cancel`], or when `deadline` (if any) has passed.
    pub fn until(deadline: Option<Instant>) -> Self {
        Cancel(Some(Arc::new(Signal {
            flag: AtomicBool::new(false),
            deadline,
        })))
    }

    /// Asks everything holding a clone to stop.
    pub fn cancel(&self) {
        if let Some(s) = &self.0 {
            s.flag.store(true, Ordering::Relaxed);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        match &self.0 {
            None => false,
            Some(s) => {
                s.flag.load(Ordering::Relaxed) || s.deadline.is_some_and(|d| Instant::now() >= d)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn never_is_never_cancelled() {
        let c = Cancel::never();
        c.cancel();
        assert!(!c.is_cancelled());
    }

    #[test]
    fn cancel_reaches_every_clone() {
        let c = Cancel::until(None);
        let other = c.clone();
        assert!(!other.is_cancelled());
        c.cancel();
        assert!(other.is_cancelled());
    }

    #[test]
    fn a_passed_deadline_cancels() {
        let now = Instant::now();
        assert!(Cancel::until(Some(now)).is_cancelled());
        assert!(!Cancel::until(Some(now + Duration::from_secs(3600))).is_cancelled());
    }
}
