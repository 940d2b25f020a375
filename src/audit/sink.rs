//! Where decision records go: one JSON line each on stdout (or a file), written by a dedicated
//! thread so that request tasks never block on the terminal or a pipe. Records are appended to
//! a shared buffer that the writer takes every few milliseconds, or at once when it grows large:
//! a request does not wake a thread. The buffer is unbounded: a record is never dropped, and
//! every buffered record is written before the process exits.

use super::record::Decision;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a record may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// A buffer this large is written at once.
const WAKE_AT: usize = 256 * 1024;
/// The capacity a buffer keeps between writes. When the output is slower than the records (a
/// pipe read slowly under a burst), the buffer grows to hold the backlog; written, it goes back
/// to this, so that a burst's backlog does not stay resident.
const KEEP: usize = 2 * WAKE_AT;

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    buffer: Mutex<Buffer>,
    ready: Condvar,
}

/// A handle for sending records to the writer thread.
pub struct LogSink {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl LogSink {
    /// Starts a writer thread over `out`.
    pub fn new<W: Write + Send + 'static>(out: W) -> LogSink {
        let shared = Arc::new(Shared::default());
        let for_writer = shared.clone();
        let writer = std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || write_loop(&for_writer, out))
            .expect("spawn the decision-log thread");
        LogSink {
            shared,
            writer: Mutex::new(Some(writer)),
        }
    }

    /// Writes records to standard output.
    pub fn stdout() -> LogSink {
        LogSink::new(std::io::stdout())
    }

    /// Writes records to `path`, rotated at midnight UTC into `NAME.YYYY-MM-DD` files in the
    /// same directory, of which the newest `retention_days` are kept: older ones are deleted.
    /// `path` itself becomes a symbolic link to the current file.
    pub fn daily_file(path: &std::path::Path, retention_days: u32) -> Result<LogSink, String> {
        let fail = |why: String| format!("log.file {}: {why}", path.display());
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| fail("not a file name".into()))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        if retention_days == 0 {
            return Err(fail("retention_days must be at least 1".into()));
        }
        let appender = tracing_appender::rolling::RollingFileAppender::builder()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix(name)
            .latest_symlink(name)
            .max_log_files(retention_days as usize)
            .build(dir)
            .map_err(|e| fail(e.to_string()))?;
        Ok(LogSink::new(appender))
    }

    /// Queues one record.
    pub fn emit(&self, d: &Decision) {
        let mut line = Vec::with_capacity(512);
        if let Err(e) = serde_json::to_writer(&mut line, d) {
            tracing::error!("cannot serialize a decision record: {e}");
            return;
        }
        line.push(b'\n');
        let mut buffer = self.shared.buffer.lock().unwrap_or_else(|e| e.into_inner());
        if buffer.closed {
            drop(buffer);
            tracing::error!("decision log closed; a record could not be written");
            return;
        }
        buffer.bytes.extend_from_slice(&line);
        if buffer.bytes.len() >= WAKE_AT {
            self.shared.ready.notify_one();
        }
    }

    /// Stops accepting records and waits until every buffered one is written and flushed.
    pub fn close(&self) {
        self.shared
            .buffer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .closed = true;
        self.shared.ready.notify_one();
        if let Some(w) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = w.join();
        }
    }
}

fn write_loop<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        let closed = {
            let mut buffer = shared.buffer.lock().unwrap_or_else(|e| e.into_inner());
            // Wait for more unless there is a lot already, or the sink is closing.
            if buffer.bytes.len() < WAKE_AT && !buffer.closed {
                buffer = shared
                    .ready
                    .wait_timeout(buffer, FLUSH_EVERY)
                    .map(|(b, _)| b)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            std::mem::swap(&mut batch, &mut buffer.bytes);
            buffer.closed
        };
        if !batch.is_empty() {
            if out.write_all(&batch).and_then(|()| out.flush()).is_err() {
                eprintln!("consent-proxy: the decision log cannot be written");
            }
            batch.clear();
            batch.shrink_to(KEEP);
        }
        if closed {
            // Records emitted after the last swap were refused; nothing is left.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn decision() -> Decision {
        Decision {
            site: None,
            ts: "t".into(),
            client: "c".into(),
            method: "GET".into(),
            host: "h".into(),
            path: "/".into(),
            status: 200,
            granted: crate::category::CategorySet::NECESSARY,
            source: "default",
            sources: Vec::new(),
            region: None,
            signals: vec![],
            cookies: Default::default(),
            blocked: false,
            tags_neutralized: 0,
            tag_vendors: Vec::new(),
            mode: "enforce",
            duration_ms: 0.5,
            error: None,
        }
    }

    #[test]
    fn a_daily_file_keeps_the_newest_files_and_links_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.log");
        // Twenty days of older files, and one that is not the log's.
        for day in 1..=20 {
            std::fs::write(
                dir.path().join(format!("decisions.log.2026-10-{day:02}")),
                "old\n",
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("other.txt"), "keep\n").unwrap();
        let sink = LogSink::daily_file(&path, 3).unwrap();
        sink.emit(&decision());
        sink.close();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let dated: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with("decisions.log."))
            .collect();
        assert_eq!(dated.len(), 3, "{names:?}");
        assert!(!names.contains(&"decisions.log.2026-10-01".to_string()));
        assert!(names.contains(&"other.txt".to_string()));
        // The link names today's file, which holds the record.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"method\":\"GET\""), "{text}");
        assert!(LogSink::daily_file(&path, 0).is_err());
    }

    #[test]
    fn every_record_is_written_before_close_returns() {
        let buf = Shared::default();
        let sink = LogSink::new(buf.clone());
        let d = decision();
        for _ in 0..10_000 {
            sink.emit(&d);
        }
        sink.close();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 10_000);
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["granted"], serde_json::json!(["necessary"]));
        assert_eq!(v["stripped_set_cookies"], serde_json::json!([]));
        assert!(v.get("error").is_none());
    }
}
