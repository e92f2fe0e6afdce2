//! Progress: an overall bar and one bar per running node (indicatif), or plain lines when
//! stderr is not a terminal. The reporter only sees engine events.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tarun_core::engine::Event;
use tarun_core::store::Outcome;
use tokio::sync::mpsc::UnboundedReceiver;

pub struct Reporter {
    handle: JoinHandle<()>,
}

impl Reporter {
    /// Starts consuming events on a thread of its own; bars only when `progress` and a terminal.
    pub fn spawn(rx: UnboundedReceiver<Event>, progress: bool) -> Self {
        let bars = progress && std::io::stderr().is_terminal();
        let handle = std::thread::spawn(move || Display::new(bars).consume(rx));
        Reporter { handle }
    }

    /// Waits until every event has been shown (the engine has dropped its senders).
    pub fn finish(self) {
        let _ = self.handle.join();
    }
}

struct Display {
    multi: MultiProgress,
    overall: ProgressBar,
    nodes: HashMap<String, ProgressBar>,
    bars: bool,
}

impl Display {
    fn new(bars: bool) -> Self {
        let target = if bars {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} nodes  {elapsed}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        overall.set_prefix("study");
        Display {
            multi,
            overall,
            nodes: HashMap::new(),
            bars,
        }
    }

    fn consume(mut self, mut rx: UnboundedReceiver<Event>) {
        while let Some(event) = rx.blocking_recv() {
            self.show(event);
        }
        self.overall.finish_and_clear();
    }

    fn line(&self, text: String) {
        if self.bars {
            self.multi.println(text).ok();
        } else {
            eprintln!("{text}");
        }
    }

    fn show(&mut self, event: Event) {
        match event {
            Event::Planned { total } => self.overall.set_length(total as u64),
            Event::NodeCached { .. } => self.overall.inc(1),
            Event::NodeStarted {
                id,
                device,
                attempt,
            } => {
                let bar = self.multi.add(ProgressBar::new(0));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>8} {msg:40!} [{bar:20}] {pos}/{len} {elapsed}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(device.clone());
                bar.set_message(id.clone());
                bar.enable_steady_tick(Duration::from_millis(250));
                let again = if attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                if !self.bars {
                    eprintln!("start   {id} on {device}{again}");
                }
                self.nodes.insert(id, bar);
            }
            Event::NodeProgress {
                id,
                done,
                total,
                message,
            } => {
                if let Some(bar) = self.nodes.get(&id) {
                    bar.set_length(total);
                    bar.set_position(done);
                    bar.set_message(format!("{id} {message}"));
                }
            }
            Event::NodeLog { id, line } => self.line(format!("  {id}: {line}")),
            Event::NodeFinished {
                id,
                outcome,
                seconds,
                error,
            } => {
                if let Some(bar) = self.nodes.remove(&id) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                self.overall.inc(1);
                let why = error.map(|e| format!(": {e}")).unwrap_or_default();
                let verb = match outcome {
                    Outcome::Ran => "done",
                    other => other.as_str(),
                };
                self.line(format!("{verb:<7} {id} ({seconds:.1}s){why}"));
            }
        }
    }
}
