//! Progress: an overall bar with the study's clock and time left, and one bar per running node
//! with its own time left (indicatif), or plain lines when stderr is not a terminal. The
//! reporter only sees engine events, plus the estimate the run starts from.
//!
//! How much is shown: `-q` only what the summary says; by default each node's end (and where
//! there are no bars, its start), its log lines and, on a terminal, its per-epoch lines; `-v`
//! also the start lines above the bars and the per-epoch lines where stderr is not a terminal
//! (a log file, a Slurm output).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tarun_core::engine::Event;
use tarun_core::store::Outcome;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::estimate::human;

/// How much a run says while it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// What the run expects to take: each node's estimated seconds (of the nodes that will run)
/// and the simulated wall time of them all.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    pub seconds: HashMap<String, f64>,
    pub wall: f64,
}

/// Prints a line above the bars (or plainly without them) from any thread, so that a notice
/// (`stopping: ...` on Ctrl-C) is not drawn over.
#[derive(Clone)]
pub struct Printer {
    multi: MultiProgress,
    bars: bool,
}

impl Printer {
    pub fn line(&self, text: &str) {
        if self.bars {
            self.multi.println(text).ok();
        } else {
            eprintln!("{text}");
        }
    }
}

pub struct Reporter {
    handle: JoinHandle<()>,
    printer: Printer,
}

impl Reporter {
    /// Starts consuming events on a thread of its own; bars only when `progress`, not quiet and
    /// on a terminal.
    pub fn spawn(
        rx: UnboundedReceiver<Event>,
        progress: bool,
        verbosity: Verbosity,
        expected: Expected,
    ) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bars = progress && terminal && verbosity > Verbosity::Quiet;
        let display = Display::new(bars, terminal, verbosity, expected);
        let printer = display.printer.clone();
        let handle = std::thread::spawn(move || display.consume(rx));
        Reporter { handle, printer }
    }

    pub fn printer(&self) -> Printer {
        self.printer.clone()
    }

    /// Waits until every event has been shown (the engine has dropped its senders).
    pub fn finish(self) {
        let _ = self.handle.join();
    }
}

/// The study's time left: from the estimate before any work is done, then from the share of
/// the estimated work done so far and the time it took (so a machine slower or faster than the
/// estimate corrects it as the run goes).
struct Clock {
    expected: Expected,
    start: Instant,
    total: f64,
    done: f64,
}

impl Clock {
    fn new(expected: Expected) -> Clock {
        let total = expected.seconds.values().sum();
        Clock {
            expected,
            start: Instant::now(),
            total,
            done: 0.0,
        }
    }

    fn finished(&mut self, id: &str) {
        self.done += self.expected.seconds.get(id).copied().unwrap_or(0.0);
    }

    /// Seconds left, `None` without an estimate.
    fn left(&self) -> Option<f64> {
        left(
            self.expected.wall,
            self.total,
            self.done,
            self.start.elapsed().as_secs_f64(),
        )
    }
}

/// Time left when `done` of `total` estimated seconds of work are finished after `elapsed`
/// seconds, on a run simulated to take `wall`. Until 2 % of the work is done the simulation
/// speaks (less the time gone); then the pace so far does.
fn left(wall: f64, total: f64, done: f64, elapsed: f64) -> Option<f64> {
    if total <= 0.0 {
        return None;
    }
    let share = (done / total).clamp(0.0, 1.0);
    if share < 0.02 {
        Some((wall - elapsed).max(0.0))
    } else {
        Some(elapsed * (1.0 - share) / share)
    }
}

/// `text` cut to at most `width` characters at a word boundary, with `…` where it was cut, so
/// that no number is shown in part.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut out = String::new();
    for word in text.split(' ') {
        let extra = usize::from(!out.is_empty()) + word.chars().count();
        if out.chars().count() + extra + 1 > width {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.is_empty() {
        // One long word (a node id): keep its start.
        out = text.chars().take(width.saturating_sub(1)).collect();
    }
    out.push('…');
    out
}

struct Display {
    printer: Printer,
    overall: ProgressBar,
    nodes: HashMap<String, ProgressBar>,
    bars: bool,
    terminal: bool,
    verbosity: Verbosity,
    clock: Clock,
    total: u64,
    finished: u64,
}

impl Display {
    fn new(bars: bool, terminal: bool, verbosity: Verbosity, expected: Expected) -> Self {
        let target = if bars {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:30}] {pos}/{len} nodes  {elapsed_precise}  {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        overall.set_prefix("study");
        // The clock ticks between events too.
        overall.enable_steady_tick(Duration::from_secs(1));
        let clock = Clock::new(expected);
        let display = Display {
            printer: Printer { multi, bars },
            overall,
            nodes: HashMap::new(),
            bars,
            terminal,
            verbosity,
            clock,
            total: 0,
            finished: 0,
        };
        display.show_left();
        display
    }

    fn consume(mut self, mut rx: UnboundedReceiver<Event>) {
        while let Some(event) = rx.blocking_recv() {
            self.show(event);
        }
        self.overall.finish_and_clear();
    }

    fn line(&self, text: String) {
        self.printer.line(&text);
    }

    fn show_left(&self) {
        if let Some(left) = self.clock.left() {
            self.overall.set_message(format!("~{} left", human(left)));
        }
    }

    fn show(&mut self, event: Event) {
        match event {
            Event::Planned { total } => {
                self.total = total as u64;
                self.overall.set_length(self.total);
            }
            Event::NodeCached { .. } => {
                self.finished += 1;
                self.overall.inc(1);
            }
            Event::NodeStarted {
                id,
                device,
                attempt,
            } => {
                let bar = self.printer.multi.add(ProgressBar::new(0));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>8} {msg} [{bar:20}] {pos}/{len} {elapsed} (~{eta} left)",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(device.clone());
                // Until the node reports progress, its estimate (from recorded timings of
                // similar nodes, or the bench's rates) says how long it should take.
                let expected = self.clock.expected.seconds.get(&id);
                bar.set_message(match expected {
                    Some(&s) => format!("{} (~{} expected)", fit(&id, 40), human(s)),
                    None => fit(&id, 40),
                });
                bar.enable_steady_tick(Duration::from_millis(250));
                let again = if attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                if self.verbosity == Verbosity::Verbose || (!self.bars && self.shows_nodes()) {
                    self.line(format!("start   {id} on {device}{again}"));
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
                    // The id may be shortened; the message (`epoch 3 loss 0.1234`) never is.
                    bar.set_message(format!("{} {message}", fit(&id, 40)));
                }
            }
            Event::NodeLog { id, line, detail } => {
                let wanted = match self.verbosity {
                    Verbosity::Quiet => false,
                    Verbosity::Normal => !detail || self.terminal,
                    Verbosity::Verbose => true,
                };
                if wanted {
                    self.line(format!("  {id}: {line}"));
                }
            }
            Event::NodeFinished {
                id,
                outcome,
                seconds,
                error,
            } => {
                if let Some(bar) = self.nodes.remove(&id) {
                    bar.finish_and_clear();
                    self.printer.multi.remove(&bar);
                }
                self.finished += 1;
                self.overall.inc(1);
                self.clock.finished(&id);
                self.show_left();
                if self.shows_nodes() {
                    let why = error.map(|e| format!(": {e}")).unwrap_or_default();
                    let verb = match outcome {
                        Outcome::Ran => "done",
                        other => other.as_str(),
                    };
                    // Without bars, each line also says how far the study is.
                    let status = match (self.bars, self.clock.left()) {
                        (false, Some(left)) => format!(
                            "  [{}/{} nodes, ~{} left]",
                            self.finished,
                            self.total,
                            human(left)
                        ),
                        (false, None) => format!("  [{}/{} nodes]", self.finished, self.total),
                        (true, _) => String::new(),
                    };
                    // Padded before it is styled: escape codes would count towards the width.
                    // Styled only where `--color` says stderr is coloured (`output::init`).
                    let padded = console::style(format!("{verb:<7}")).for_stderr();
                    let verb = match outcome {
                        Outcome::Ran => padded.green(),
                        Outcome::Cached => padded.dim(),
                        Outcome::Failed => padded.red().bold(),
                        Outcome::Skipped | Outcome::Cancelled => padded.yellow(),
                    };
                    self.line(format!("{verb} {id} ({seconds:.1}s){why}{status}"));
                }
            }
        }
    }

    /// Whether each node's start and end get a line of their own.
    fn shows_nodes(&self) -> bool {
        self.verbosity > Verbosity::Quiet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_follows_the_estimate_then_the_pace() {
        // Nothing done: the simulated wall time, less the time gone.
        assert_eq!(left(100.0, 400.0, 0.0, 30.0), Some(70.0));
        assert_eq!(left(100.0, 400.0, 0.0, 130.0), Some(0.0));
        // A quarter of the work in 50 s: three quarters more take 150 s.
        assert_eq!(left(100.0, 400.0, 100.0, 50.0), Some(150.0));
        assert_eq!(left(100.0, 400.0, 400.0, 80.0), Some(0.0));
        assert_eq!(left(100.0, 0.0, 0.0, 1.0), None);
    }

    #[test]
    fn fitting_cuts_between_words_never_inside_a_number() {
        assert_eq!(fit("epoch 3 loss 0.1234", 40), "epoch 3 loss 0.1234");
        assert_eq!(fit("epoch 3 loss 0.1234", 16), "epoch 3 loss…");
        assert_eq!(fit("expert[arch=resnet18,class=3]", 10), "expert[ar…");
        for width in 2..30 {
            let cut = fit("loss 0.123456 accuracy 91.25%", width);
            assert!(cut.chars().count() <= width, "{cut:?} over {width}");
            let kept = cut.trim_end_matches('…');
            assert!(
                "loss 0.123456 accuracy 91.25%".starts_with(kept),
                "{cut:?} at {width}"
            );
            // Every number kept is whole.
            for word in kept.split(' ').filter(|w| !w.is_empty()) {
                if width > 5 {
                    assert!(
                        ["loss", "0.123456", "accuracy", "91.25%"].contains(&word),
                        "{word:?} of {cut:?}"
                    );
                }
            }
        }
    }
}
