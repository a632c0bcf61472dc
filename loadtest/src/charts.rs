//! SVG charts of a report, written by hand (no font or drawing dependency): latency
//! percentiles per step (log scale) and throughput per step.

use std::fmt::Write as _;
use std::path::Path;

use crate::report::Report;

const W: f64 = 760.0;
const H: f64 = 420.0;
const L: f64 = 70.0;
const R: f64 = 150.0;
const T: f64 = 40.0;
const B: f64 = 60.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
];

/// One line of a chart.
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A line chart over categorical x labels; `log` for a log10 y axis.
pub fn line_chart(
    title: &str,
    y_label: &str,
    labels: &[String],
    series: &[Series],
    log: bool,
) -> String {
    let vals = series.iter().flat_map(|s| s.values.iter().copied());
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for v in vals.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        (lo, hi) = (if log { 0.1 } else { 0.0 }, 1.0);
    }
    let (ylo, yhi) = if log {
        (
            lo.log10().floor(),
            hi.log10().ceil().max(lo.log10().floor() + 1.0),
        )
    } else {
        (0.0, if hi <= 0.0 { 1.0 } else { hi * 1.1 })
    };
    let pw = W - L - R;
    let ph = H - T - B;
    let n = labels.len().max(1);
    let x = |i: usize| {
        L + if n == 1 {
            pw / 2.0
        } else {
            pw * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| {
        let t = if log {
            (v.max(1e-9).log10() - ylo) / (yhi - ylo)
        } else {
            (v - ylo) / (yhi - ylo)
        };
        T + ph * (1.0 - t.clamp(0.0, 1.0))
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    // Y grid and ticks.
    let ticks: Vec<f64> = if log {
        (ylo as i32..=yhi as i32).map(|e| 10f64.powi(e)).collect()
    } else {
        (0..=5)
            .map(|i| ylo + (yhi - ylo) * i as f64 / 5.0)
            .collect()
    };
    for t in ticks {
        let yy = y(t);
        let _ = write!(
            s,
            r##"<line x1="{L}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - R,
            L - 6.0,
            yy + 4.0,
            fmt_num(t)
        );
    }
    let _ = write!(
        s,
        r#"<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
        T + ph / 2.0,
        esc(y_label)
    );
    for (i, l) in labels.iter().enumerate() {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x(i),
            H - B + 18.0,
            esc(l)
        );
    }
    let _ = write!(
        s,
        r#"<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    for (si, ser) in series.iter().enumerate() {
        let c = COLORS[si % COLORS.len()];
        let pts: Vec<String> = ser
            .values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite() && (!log || **v > 0.0))
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        for p in &pts {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = write!(s, r#"<circle cx="{px}" cy="{py}" r="3" fill="{c}"/>"#);
        }
        let ly = T + 10.0 + 20.0 * si as f64;
        let _ = write!(
            s,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{c}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            W - R + 10.0,
            W - R + 30.0,
            W - R + 36.0,
            ly + 4.0,
            esc(&ser.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else if v >= 1.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Writes `latency.svg` and `throughput.svg` into `dir`; returns the files written.
pub fn write(report: &Report, dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let labels: Vec<String> = report.steps.iter().map(|s| s.label.clone()).collect();
    let col =
        |f: &dyn Fn(&crate::report::Step) -> f64| report.steps.iter().map(f).collect::<Vec<f64>>();
    let lat = vec![
        Series {
            name: "p50".into(),
            values: col(&|s| s.latency.p50_ms),
        },
        Series {
            name: "p90".into(),
            values: col(&|s| s.latency.p90_ms),
        },
        Series {
            name: "p99".into(),
            values: col(&|s| s.latency.p99_ms),
        },
        Series {
            name: "p99.9".into(),
            values: col(&|s| s.latency.p999_ms),
        },
        Series {
            name: "max".into(),
            values: col(&|s| s.latency.max_ms),
        },
        Series {
            name: "p99 at the socket".into(),
            values: col(&|s| s.arrival.p99_ms),
        },
    ];
    let thr = vec![
        Series {
            name: "target pub/s".into(),
            values: col(&|s| s.target_rate),
        },
        Series {
            name: "achieved pub/s".into(),
            values: col(&|s| s.publish_rate),
        },
        Series {
            name: "deliveries/s".into(),
            values: col(&|s| s.deliveries_per_s),
        },
    ];
    let t = &report.scenario;
    let files = [
        (
            dir.join("latency.svg"),
            line_chart(
                &format!("{t}: latency per step"),
                "ms (log)",
                &labels,
                &lat,
                true,
            ),
        ),
        (
            dir.join("throughput.svg"),
            line_chart(
                &format!("{t}: throughput per step"),
                "per second (log)",
                &labels,
                &thr,
                true,
            ),
        ),
    ];
    let mut out = Vec::new();
    for (p, svg) in files {
        std::fs::write(&p, svg)?;
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_is_well_formed_enough() {
        let svg = line_chart(
            "t <x>",
            "ms",
            &["a".into(), "b".into()],
            &[Series {
                name: "p50".into(),
                values: vec![1.0, 10.0],
            }],
            true,
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("t &lt;x&gt;"));
        assert!(svg.contains("<polyline"));
    }
}
