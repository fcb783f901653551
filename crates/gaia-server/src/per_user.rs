//! Per-user counters of things held at once on this instance (live sockets, agent runs), each place
//! given back when its [`Slot`] is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many places each user holds at once, bounded per call of [`PerUser::take`].
#[derive(Debug, Default)]
pub(crate) struct PerUser {
    per_user: Mutex<HashMap<String, usize>>,
}

/// One place held by a user; given back when dropped.
pub(crate) struct Slot {
    counter: Arc<PerUser>,
    user_id: String,
}

impl PerUser {
    /// A place for one more of `user_id`'s, unless they already hold `max`.
    pub(crate) fn take(self: &Arc<Self>, user_id: &str, max: usize) -> Option<Slot> {
        let mut m = self.lock();
        let n = m.entry(user_id.to_string()).or_insert(0);
        if *n >= max {
            if *n == 0 {
                m.remove(user_id);
            }
            return None;
        }
        *n += 1;
        Some(Slot { counter: self.clone(), user_id: user_id.to_string() })
    }

    /// How many places `user_id` holds on this instance.
    pub(crate) fn count(&self, user_id: &str) -> usize {
        self.lock().get(user_id).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // Each operation is one update of one count: consistent whatever a panicking holder did.
        self.per_user.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.counter.lock();
        if let Some(n) = m.get_mut(&self.user_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_bounded_per_user_and_given_back() {
        let c = Arc::new(PerUser::default());
        let a1 = c.take("a", 2).unwrap();
        let _a2 = c.take("a", 2).unwrap();
        assert!(c.take("a", 2).is_none(), "a third place");
        assert!(c.take("b", 2).is_some(), "another user");
        assert_eq!(c.count("a"), 2);
        drop(a1);
        assert_eq!(c.count("a"), 1);
        assert!(c.take("a", 2).is_some());
        assert!(c.take("z", 0).is_none() && c.lock().get("z").is_none(), "nothing kept for a refusal");
    }
}
