//! Log output: logfmt (the Prometheus exporters' default) or JSON, one line per event.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogFormat, LogLevel};

/// Installs the global subscriber; logs go to stderr.
pub fn init(level: LogLevel, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::new(level.as_str());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_current_span(false).init(),
        LogFormat::Logfmt => builder.event_format(Logfmt).init(),
    }
}

/// `ts=… level=info target=… msg="…" key=value`.
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        writer.write_str("ts=")?;
        SystemTime.format_time(&mut writer)?;
        write!(
            writer,
            " level={} target={}",
            metadata.level().as_str().to_ascii_lowercase(),
            metadata.target()
        )?;
        let mut line = String::new();
        event.record(&mut LogfmtFields { out: &mut line });
        writer.write_str(&line)?;
        writeln!(writer)
    }
}

struct LogfmtFields<'a> {
    out: &'a mut String,
}

impl LogfmtFields<'_> {
    fn push(&mut self, key: &str, value: &str) {
        let key = if key == "message" { "msg" } else { key };
        let _ = write!(self.out, " {key}=");
        push_value(self.out, value);
    }
}

/// Quotes a value when logfmt needs it, escaping quotes, backslashes and line breaks.
pub fn push_value(out: &mut String, value: &str) {
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| c == ' ' || c == '=' || c == '"' || c == '\\' || c.is_control());
    if !needs_quotes {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Visit for LogfmtFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field.name(), value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field.name(), &format!("{value:?}"));
    }
}

/// An error and its causes on one line, joined by ": ", as a start-up failure or a log field.
/// A cause an error already spells out in its own message is not repeated.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = inner.source();
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_reads_as_one_line_without_repeats() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read x.yml")]
        struct Outer(#[source] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("listen failed: {0}")]
        struct Spelled(#[source] std::io::Error);
        let missing = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(
            one_line(&Outer(missing())),
            "cannot read x.yml: no such file"
        );
        assert_eq!(one_line(&Spelled(missing())), "listen failed: no such file");
    }

    #[test]
    fn values_are_quoted_only_when_needed() {
        let mut out = String::new();
        push_value(&mut out, "plain");
        out.push(' ');
        push_value(&mut out, "two words");
        out.push(' ');
        push_value(&mut out, "");
        out.push(' ');
        push_value(&mut out, "say \"hi\"\nnext");
        assert_eq!(out, r#"plain "two words" "" "say \"hi\"\nnext""#);
    }
}
