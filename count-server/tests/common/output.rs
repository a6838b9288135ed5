//! A spawned process's output, kept for the test to read and to show on failure.

#![allow(unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A child's output as it comes, and whether both pipes have ended.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub log: Arc<Mutex<String>>,
    ended: Arc<AtomicUsize>,
}

impl Output {
    /// Whether stdout and stderr have both ended (the process and its pipes are gone),
    /// so the log holds every line.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire) == 2
    }
}

/// Takes `child`'s stdout and stderr (both piped) and appends their lines, as they
/// come, to the returned log.
pub fn collect_output(child: &mut Child) -> Output {
    let output = Output::default();
    for pipe in [
        Box::new(child.stdout.take().expect("stdout piped")) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().expect("stderr piped")),
    ] {
        let output = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut log = output.log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
            output.ended.fetch_add(1, Ordering::Release);
        });
    }
    output
}
