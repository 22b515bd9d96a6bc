//! The `--html` report: one self-contained page (inline SVG, no scripts, nothing fetched)
//! plotting requests/s, errors/s and p50/p99 latency over time per endpoint.

use std::fmt::Write;

use super::stats::{Endpoint, SecondPoint};
use super::Report;

const COLORS: [&str; 7] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
];
const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 220.0;
const MARGIN: f64 = 50.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One chart: a line per endpoint that had traffic, of `value` over the seconds.
fn chart(title: &str, unit: &str, report: &Report, value: impl Fn(&SecondPoint) -> f64) -> String {
    let seconds = report.timeline.len().max(1);
    let active: Vec<usize> = (0..Endpoint::ALL.len())
        .filter(|i| report.endpoints[*i].requests > 0)
        .collect();
    let max = report
        .timeline
        .iter()
        .flat_map(|points| active.iter().map(|i| value(&points[*i])))
        .fold(0.0, f64::max)
        .max(1e-9);
    let x = |s: usize| MARGIN + (WIDTH - 2.0 * MARGIN) * s as f64 / seconds.max(2) as f64;
    let y = |v: f64| HEIGHT - MARGIN + -(HEIGHT - 2.0 * MARGIN) * v / max;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<h2>{}</h2><svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\">",
        escape(title)
    );
    let _ = write!(
        svg,
        "<line x1=\"{MARGIN}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/><line x1=\"{MARGIN}\" y1=\"{MARGIN}\" x2=\"{MARGIN}\" y2=\"{b}\" stroke=\"#999\"/>",
        b = HEIGHT - MARGIN,
        r = WIDTH - MARGIN
    );
    let _ = write!(
        svg,
        "<text x=\"4\" y=\"{}\" font-size=\"11\">{max:.1} {}</text><text x=\"4\" y=\"{}\" font-size=\"11\">0</text><text x=\"{}\" y=\"{}\" font-size=\"11\">{seconds} s</text>",
        MARGIN + 4.0,
        escape(unit),
        HEIGHT - MARGIN,
        WIDTH - MARGIN - 20.0,
        HEIGHT - MARGIN + 16.0
    );
    for (n, i) in active.iter().enumerate() {
        let points: Vec<String> = report
            .timeline
            .iter()
            .enumerate()
            .map(|(s, p)| format!("{:.1},{:.1}", x(s), y(value(&p[*i]))))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/><text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{}\">{}</text>",
            COLORS[*i],
            points.join(" "),
            WIDTH - MARGIN + 4.0,
            MARGIN + 14.0 * n as f64,
            COLORS[*i],
            report.endpoints[*i].endpoint
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The whole page.
pub(super) fn render(report: &Report) -> String {
    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>sgt loadtest</title><style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 10px;text-align:right}th:first-child,td:first-child{text-align:left}</style></head><body>",
    );
    let _ = write!(
        page,
        "<h1>sgt loadtest: {} agents against {}</h1><p>run {}, {:.0} s, {} requests ({:.1}/s), {} errors, log lines acknowledged {}{}</p>",
        report.agents,
        escape(&report.url),
        escape(&report.run_id),
        report.duration_seconds,
        report.total_requests,
        report.requests_per_second,
        report.total_errors,
        report.lines_acknowledged,
        report
            .lines_lost
            .map(|l| format!(", lost {l}"))
            .unwrap_or_default()
    );
    if let Some(line) = super::describe_connections(&report.connections) {
        let _ = write!(page, "<p>{}</p>", escape(&line));
    }
    for campaign in &report.campaigns {
        let _ = write!(
            page,
            "<p>{}</p>",
            escape(&super::campaigns::describe(campaign))
        );
    }
    page.push_str("<table><tr><th>endpoint</th><th>requests</th><th>errors</th><th>req/s</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th></tr>");
    for e in report.endpoints.iter().filter(|e| e.requests > 0) {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>",
            e.endpoint, e.requests, e.errors, e.requests_per_second, e.p50_ms, e.p95_ms, e.p99_ms, e.max_ms
        );
    }
    page.push_str("</table>");
    page.push_str(&chart("Requests per second", "req/s", report, |p| {
        p.requests as f64
    }));
    page.push_str(&chart("Errors per second", "errors/s", report, |p| {
        p.errors as f64
    }));
    page.push_str(&chart("p50 latency", "ms", report, |p| p.p50_ms));
    page.push_str(&chart("p99 latency", "ms", report, |p| p.p99_ms));
    for failure in &report.failed_assertions {
        let _ = write!(page, "<p><strong>FAILED:</strong> {}</p>", escape(failure));
    }
    page.push_str("</body></html>\n");
    page
}
