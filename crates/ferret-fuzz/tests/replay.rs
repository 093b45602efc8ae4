//! Replays every saved fuzzing input (`corpus/<target>/`: what the fuzzers kept, and the inputs
//! that once crashed a reader) through its target. Each must be refused or read without a
//! panic.

use std::path::Path;

#[test]
fn saved_fuzz_inputs_are_read_or_refused_without_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, target) in ferret_fuzz::TARGETS {
        let dir = root.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "no saved inputs for {name}");
        for input in &inputs {
            let data = std::fs::read(input).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} panicked", input.display());
        }
        println!("{name}: {} inputs", inputs.len());
    }
}
