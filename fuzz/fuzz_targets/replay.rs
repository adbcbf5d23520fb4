//! Any bytes as a replay file: never a panic, and the counters only ever see whole objects.
#![no_main]

use kube_event_metrics::source::Signal;
use kube_event_metrics::source::replay::ReplayInput;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = ReplayInput::from_reader("fuzz".into(), Box::new(std::io::Cursor::new(data.to_vec())))
    else {
        return; // neither JSON nor YAML: refused with an error, which is the contract
    };
    let mut objects = 0usize;
    let _ = input.run(&mut |signal| {
        if let Signal::Object { event: Ok(observation), .. } = signal {
            assert!(observation.occurrences >= 1);
            objects += 1;
        }
    });
    assert!(objects <= data.len());
});
