//! One shared copy of a text many values repeat.
//!
//! A wide sweep's tasks repeat a few texts tens of thousands of times (the
//! manifest task a matrix entry came from, its backend, its priority); each
//! owned copy is an allocation that a 50,000-task run holds to its end.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

/// Hands out one `Arc<str>` per distinct text. Shared between threads.
#[derive(Debug, Default)]
pub struct Interner {
    texts: Mutex<HashSet<Arc<str>>>,
}

impl Interner {
    /// The shared copy of `text`, made on first use.
    pub fn get(&self, text: &str) -> Arc<str> {
        let mut texts = self.texts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = texts.get(text) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(text);
        texts.insert(Arc::clone(&shared));
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_share_one_copy_and_different_ones_do_not() {
        let interner = Interner::default();
        let a = interner.get("claude");
        let b = interner.get(&String::from("claude"));
        let c = interner.get("codex");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!((&*a, &*c), ("claude", "codex"));
    }
}
