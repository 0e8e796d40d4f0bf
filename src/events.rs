//! How the events of one reconcile pass become API writes.
//!
//! Every event is a create request. A pass that selects a composition,
//! creates its objects, writes the Secret and turns Ready would otherwise
//! post four events for one claim, doubling the writes of its happy path.
//! The Normal events of a pass are therefore folded into one that names
//! every step in order, with the reason of the last step (where the pass
//! left the object). Warnings stay separate: each is a distinct problem
//! that a person filters for.

use kube::runtime::events::{Event, EventType};

/// The longest note the events API accepts is 1 KiB.
const MAX_NOTE: usize = 1000;

/// Folds the Normal events of one pass into one; Warnings come first, unchanged.
pub fn fold_pass(events: Vec<Event>) -> Vec<Event> {
    let (mut out, normal): (Vec<Event>, Vec<Event>) = events
        .into_iter()
        .partition(|e| e.type_ == EventType::Warning);
    let notes: Vec<String> = normal.iter().filter_map(|e| e.note.clone()).collect();
    if let Some(last) = normal.into_iter().last() {
        out.push(Event {
            note: Some(truncate(&notes.join("; "), MAX_NOTE)),
            ..last
        });
    }
    out
}

/// An event of a reconcile's `action`.
pub fn event(type_: EventType, reason: &str, action: &str, note: impl Into<String>) -> Event {
    Event {
        type_,
        reason: reason.into(),
        note: Some(note.into()),
        action: action.into(),
        secondary: None,
    }
}

/// The first `max` characters of `s`.
pub fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(type_: EventType, reason: &str, note: &str) -> Event {
        Event {
            type_,
            reason: reason.into(),
            note: Some(note.into()),
            action: reason.to_lowercase(),
            secondary: None,
        }
    }

    #[test]
    fn normal_events_of_a_pass_become_one_with_every_step() {
        let out = fold_pass(vec![
            ev(
                EventType::Normal,
                "CompositionSelected",
                "composition c selected",
            ),
            ev(EventType::Normal, "ResourceCreated", "created ConfigMap a"),
            ev(EventType::Normal, "Ready", "the database is ready"),
        ]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].reason, "Ready");
        assert_eq!(out[0].action, "ready");
        assert_eq!(
            out[0].note.as_deref(),
            Some("composition c selected; created ConfigMap a; the database is ready")
        );
    }

    #[test]
    fn warnings_stay_separate_and_first() {
        let out = fold_pass(vec![
            ev(EventType::Normal, "ResourceCreated", "created ConfigMap a"),
            ev(EventType::Warning, "ProviderError", "x"),
            ev(EventType::Warning, "NotReady", "y"),
        ]);
        let reasons: Vec<&str> = out.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["ProviderError", "NotReady", "ResourceCreated"]);
        assert_eq!(out[2].note.as_deref(), Some("created ConfigMap a"));
    }

    #[test]
    fn one_event_or_none_is_unchanged() {
        assert!(fold_pass(Vec::new()).is_empty());
        let out = fold_pass(vec![ev(EventType::Normal, "Ready", "ready")]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].note.as_deref(), Some("ready"));
    }

    #[test]
    fn the_folded_note_fits_the_api() {
        let long = "x".repeat(800);
        let out = fold_pass(vec![
            ev(EventType::Normal, "A", &long),
            ev(EventType::Normal, "B", &long),
        ]);
        assert_eq!(
            out[0].note.as_ref().map(|n| n.chars().count()),
            Some(MAX_NOTE)
        );
    }
}
