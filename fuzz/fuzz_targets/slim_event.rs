//! Any bytes as a watch line or an Event object: the slim decode never fails on types, only on
//! JSON syntax, and an Observation always has at least one occurrence.
#![no_main]

use kube_event_metrics::source::SlimEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = serde_json::from_slice::<SlimEvent>(data) {
        if let Ok(observation) = event.into_observation() {
            assert!(observation.occurrences >= 1);
        }
    }
    if let Ok(kube::core::WatchEvent::Added(event) | kube::core::WatchEvent::Modified(event)) =
        serde_json::from_slice::<kube::core::WatchEvent<SlimEvent>>(data)
    {
        let _ = event.into_observation();
    }
    // Any valid JSON value decodes as a SlimEvent: wrong types make it malformed, not an error.
    if serde_json::from_slice::<serde_json::Value>(data).is_ok() {
        assert!(serde_json::from_slice::<SlimEvent>(data).is_ok());
    }
});
