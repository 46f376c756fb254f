//! [`CycleState`]: data plugins compute once per scheduling cycle (PreFilter, PreScore) and read
//! per node (Filter, Score). Keyed by type, so each plugin owns its own state type.

use std::any::{Any, TypeId};

/// Per-cycle plugin data, keyed by the data's type. Lookups are a short linear scan over
/// `TypeId`s (a cycle holds a handful of entries), so reads in the per-node loop are cheap.
///
/// ```
/// use orch_scheduler::cycle_state::CycleState;
/// struct Mine(u32);
/// let mut s = CycleState::default();
/// s.write(Mine(7));
/// assert_eq!(s.read::<Mine>().map(|m| m.0), Some(7));
/// ```
#[derive(Default)]
pub struct CycleState {
    entries: Vec<(TypeId, Box<dyn Any + Send + Sync>)>,
    skip_filter: Vec<&'static str>,
    skip_score: Vec<&'static str>,
}

impl std::fmt::Debug for CycleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CycleState")
            .field("entries", &self.entries.len())
            .field("skip_filter", &self.skip_filter)
            .field("skip_score", &self.skip_score)
            .finish()
    }
}

impl CycleState {
    /// Stores (or replaces) a value.
    pub fn write<T: Any + Send + Sync>(&mut self, value: T) {
        let id = TypeId::of::<T>();
        if let Some(e) = self.entries.iter_mut().find(|(t, _)| *t == id) {
            e.1 = Box::new(value);
        } else {
            self.entries.push((id, Box::new(value)));
        }
    }

    /// Reads a value.
    pub fn read<T: Any + Send + Sync>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.entries
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, v)| v.downcast_ref())
    }

    /// Reads a value mutably.
    pub fn read_mut<T: Any + Send + Sync>(&mut self) -> Option<&mut T> {
        let id = TypeId::of::<T>();
        self.entries
            .iter_mut()
            .find(|(t, _)| *t == id)
            .and_then(|(_, v)| v.downcast_mut())
    }

    /// Removes a value.
    pub fn remove<T: Any + Send + Sync>(&mut self) -> Option<Box<T>> {
        let id = TypeId::of::<T>();
        let i = self.entries.iter().position(|(t, _)| *t == id)?;
        self.entries.swap_remove(i).1.downcast().ok()
    }

    /// Clears everything for the next cycle (keeps allocations).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.skip_filter.clear();
        self.skip_score.clear();
    }

    /// Marks a plugin's Filter as skipped for this cycle (its PreFilter returned Skip).
    pub fn skip_filter(&mut self, plugin: &'static str) {
        self.skip_filter.push(plugin);
    }

    /// True when the plugin's Filter is skipped.
    pub fn is_filter_skipped(&self, plugin: &str) -> bool {
        self.skip_filter.contains(&plugin)
    }

    /// Marks a plugin's Score as skipped (its PreScore returned Skip).
    pub fn skip_score(&mut self, plugin: &'static str) {
        self.skip_score.push(plugin);
    }

    /// True when the plugin's Score is skipped.
    pub fn is_score_skipped(&self, plugin: &str) -> bool {
        self.skip_score.contains(&plugin)
    }
}
