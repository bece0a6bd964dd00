//! `gt visualize LOG -o timeline.png|.svg`: a timeline of an instruction log, for bug reports.
//!
//! One lane per worker (its executed instructions from `EXEC` timing records, else the
//! instructions sent to it) and one per client stream (the instructions it sent), coloured by op
//! family; hot-path regions shaded on the worker lanes; worker-to-worker transfers drawn as
//! arrows between worker lanes; a legend and a time axis. Text uses the DejaVu Sans font shipped
//! in `assets/fonts` (registered at start), so no system fonts are needed.

use crate::trace_parse::{op_family, parse_all, Line, Source};
use anyhow::{bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

/// Op families and their colours, in legend order.
const FAMILIES: [(&str, RGBColor); 8] = [
    ("creation", RGBColor(76, 114, 176)),
    ("elementwise", RGBColor(85, 168, 104)),
    ("matmul", RGBColor(196, 78, 82)),
    ("reduce", RGBColor(129, 114, 178)),
    ("view", RGBColor(204, 185, 116)),
    ("index", RGBColor(100, 181, 205)),
    ("transfer", RGBColor(221, 132, 82)),
    ("other", RGBColor(140, 140, 140)),
];
const HOT: RGBColor = RGBColor(255, 200, 0);
const ARROW: RGBColor = RGBColor(30, 30, 30);

fn colour(family: &str) -> RGBColor {
    FAMILIES
        .iter()
        .find(|(f, _)| *f == family)
        .map(|(_, c)| *c)
        .unwrap_or(FAMILIES[7].1)
}

/// A lane of the picture.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Lane {
    Worker(u32),
    Client(u32, String),
}

impl Lane {
    fn title(&self) -> String {
        match self {
            Lane::Worker(w) => format!("worker {w}"),
            Lane::Client(s, name) => format!("client s{s} {name}"),
        }
    }
}

/// What gets drawn, in microseconds.
#[derive(Default)]
struct Timeline {
    lanes: Vec<Lane>,
    /// (lane, start, duration, family)
    slices: Vec<(usize, f64, f64, &'static str)>,
    /// (lane, start, end)
    hot: Vec<(usize, f64, f64)>,
    /// (from lane, time it left, to lane, time it arrived)
    transfers: Vec<(usize, f64, usize, f64)>,
    end_us: f64,
}

/// One end of a transfer: the worker and when the tensor left or arrived (µs).
type End = (u32, f64);

fn timeline(lines: &[Line]) -> Timeline {
    let mut lanes = BTreeSet::new();
    for l in lines {
        match &l.source {
            Source::Worker(w) => {
                lanes.insert(Lane::Worker(*w));
            }
            Source::Client { session, name } => {
                lanes.insert(Lane::Client(*session, name.clone()));
            }
            Source::Joining(_) => {}
        }
    }
    let lanes: Vec<Lane> = lanes.into_iter().collect();
    let index: HashMap<Lane, usize> = lanes.iter().cloned().zip(0..).collect();
    let worker_lane = |w: u32| index.get(&Lane::Worker(w)).copied();
    let timed: BTreeSet<u32> = lines
        .iter()
        .filter(|l| l.event == "EXEC")
        .filter_map(|l| l.worker())
        .collect();
    let mut t = Timeline {
        lanes: lanes.clone(),
        ..Default::default()
    };
    // Ticks get one millisecond-column's worth of width; the drawing enforces a pixel minimum.
    let tick = 1.0;
    // Worker timing of sends and receives: (worker, key, op) → (start, end).
    let spans: HashMap<(u32, &str, &str), (f64, f64)> = lines
        .iter()
        .filter(|l| l.event == "EXEC")
        .filter_map(|l| {
            let start = l.secs_us("t")?;
            let end = start + l.micros("dur").unwrap_or(0.0);
            Some(((l.worker()?, l.field("key")?, l.field("op")?), (start, end)))
        })
        .collect();
    // Each transfer's two ends, by transfer id (either may be logged first).
    let mut ends: BTreeMap<String, (Option<End>, Option<End>)> = BTreeMap::new();
    let mut hot_open: HashMap<(u32, String), f64> = HashMap::new();
    // The elapsed column has millisecond resolution: spread the lines of each millisecond evenly
    // over it, in order, so a burst of instructions reads as a burst rather than one tick.
    let mut spread = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let j = i + lines[i..]
            .iter()
            .take_while(|l| l.at_us == lines[i].at_us)
            .count();
        let n = (j - i) as f64;
        for k in 0..(j - i) {
            spread.push(lines[i].at_us as f64 + 1000.0 * k as f64 / n);
        }
        i = j;
    }
    for (l, &at) in lines.iter().zip(&spread) {
        t.end_us = t.end_us.max(at);
        match (l.event.as_str(), &l.source) {
            ("RECV", Source::Client { session, name }) if l.command == "Exec" => {
                let lane = index[&Lane::Client(*session, name.clone())];
                t.slices
                    .push((lane, at, tick, op_family(l.field("op").unwrap_or(""))));
            }
            ("EXEC", Source::Worker(w)) => {
                let start = l.secs_us("t").unwrap_or(at);
                let dur = l.micros("dur").unwrap_or(0.0);
                t.end_us = t.end_us.max(start + dur);
                let fam = op_family(l.field("op").unwrap_or(""));
                if let Some(lane) = worker_lane(*w) {
                    t.slices.push((lane, start, dur, fam));
                }
            }
            ("WORKER_SEND", Source::Worker(w)) if !timed.contains(w) && l.command == "Exec" => {
                if let Some(lane) = worker_lane(*w) {
                    t.slices
                        .push((lane, at, tick, op_family(l.field("op").unwrap_or(""))));
                }
            }
            ("MODIFIER_INJECT", Source::Worker(w)) => {
                if let Some(x) = l.field("xfer") {
                    if l.command == "Send" {
                        let key = l.field("key").unwrap_or("");
                        let left = spans.get(&(*w, key, "send")).map_or(at, |s| s.0);
                        ends.entry(x.to_string()).or_default().0 = Some((*w, left));
                    } else if l.command == "Recv" {
                        let key = l.field("out").unwrap_or("");
                        let arrived = spans.get(&(*w, key, "recv")).map_or(at, |s| s.1);
                        ends.entry(x.to_string()).or_default().1 = Some((*w, arrived));
                    }
                }
            }
            ("HOTPATH_START" | "HOTPATH_END", _) => {
                let w = l.num("worker").unwrap_or(0) as u32;
                let sig = l.field("signature").unwrap_or("").to_string();
                if l.event == "HOTPATH_START" {
                    hot_open.insert((w, sig), at);
                } else if let (Some(start), Some(lane)) =
                    (hot_open.remove(&(w, sig)), worker_lane(w))
                {
                    t.hot.push((lane, start, at.max(start + tick)));
                }
            }
            _ => {}
        }
    }
    for (_, ends) in ends {
        if let (Some((from, left)), Some((to, arrived))) = ends {
            if let (Some(a), Some(b)) = (worker_lane(from), worker_lane(to)) {
                t.transfers.push((a, left, b, arrived.max(left)));
            }
        }
    }
    for ((w, _), start) in hot_open {
        if let Some(lane) = worker_lane(w) {
            t.hot.push((lane, start, t.end_us));
        }
    }
    t
}

/// Writes the picture of `log` to `out` (PNG or SVG by extension), `width` pixels wide.
pub fn run(log: &Path, out: &Path, width: u32) -> Result<()> {
    let text = std::fs::read_to_string(log)
        .with_context(|| format!("reading the instruction log {}", log.display()))?;
    let lines = parse_all(&text)?;
    let (w, h) = render(&lines, &log.display().to_string(), out, width)?;
    println!("wrote {} ({w}x{h})", out.display());
    Ok(())
}

/// Draws `lines` into `out`; returns the picture's size.
pub fn render(lines: &[Line], title: &str, out: &Path, width: u32) -> Result<(u32, u32)> {
    if lines.is_empty() {
        bail!("the log has no lines to draw");
    }
    // Registering twice is harmless; a bad font would be a build problem, so say so.
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow::anyhow!("the bundled DejaVu Sans font failed to load"))?;
    let t = timeline(lines);
    let height = 140 + 46 * t.lanes.len() as u32 + 40;
    let size = (width.max(400), height);
    let title = format!(
        "GT timeline — {title} — {} lines, {} lanes",
        lines.len(),
        t.lanes.len()
    );
    match out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
    {
        Some(e) if e == "png" => {
            let root = BitMapBackend::new(out, size).into_drawing_area();
            draw(&root, &t, &title)?;
            root.present().context("writing the PNG")?;
        }
        Some(e) if e == "svg" => {
            let root = SVGBackend::new(out, size).into_drawing_area();
            draw(&root, &t, &title)?;
            root.present().context("writing the SVG")?;
        }
        _ => bail!(
            "cannot tell the picture format of {}: use a .png or .svg name",
            out.display()
        ),
    }
    Ok(size)
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, t: &Timeline, title: &str) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("drawing: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let (pw, _) = root.dim_in_pixel();
    // Zoom to where something happens (heartbeats and stats polls run on long after).
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(_, a, d, _) in &t.slices {
        (lo, hi) = (lo.min(a), hi.max(a + d));
    }
    for &(_, a, b) in &t.hot {
        (lo, hi) = (lo.min(a), hi.max(b));
    }
    for &(_, a, _, b) in &t.transfers {
        (lo, hi) = (lo.min(a), hi.max(b));
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, t.end_us);
    }
    let span = (hi - lo).max(1000.0);
    let start_s = ((lo - 0.04 * span) / 1e6).max(0.0);
    let end_s = (hi + 0.04 * span) / 1e6;
    let lanes = t.lanes.len().max(1) as f64;
    let labels: Vec<String> = t.lanes.iter().map(Lane::title).collect();
    let (plot, legend) = root.split_vertically(root.dim_in_pixel().1 - 40);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(170)
        .build_cartesian_2d(start_s..end_s, 0.0..lanes)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time since the log started (s)")
        .x_label_formatter(&|x| {
            if end_s - start_s < 0.01 {
                format!("{x:.5}")
            } else {
                format!("{x:.3}")
            }
        })
        .y_labels(t.lanes.len() * 2 + 1)
        .y_label_formatter(&|y| {
            // Lane i spans [n-1-i, n-i): label at its middle.
            let pos = lanes - y - 0.5;
            let i = pos.round();
            if (pos - i).abs() < 0.01 && i >= 0.0 && (i as usize) < labels.len() {
                labels[i as usize].clone()
            } else {
                String::new()
            }
        })
        .y_desc("")
        .disable_y_mesh()
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    let lane_y = |i: usize| (lanes - 1.0 - i as f64, lanes - i as f64);
    // A slice is at least one pixel wide, so microsecond work shows on a seconds axis.
    let min_w = (end_s - start_s) / pw.max(1) as f64;
    // Lane backgrounds, alternating, so lanes read as rows.
    chart
        .draw_series((0..t.lanes.len()).map(|i| {
            let (y0, y1) = lane_y(i);
            let shade = if i % 2 == 0 {
                RGBColor(246, 246, 246)
            } else {
                WHITE
            };
            Rectangle::new([(start_s, y0), (end_s, y1)], shade.filled())
        }))
        .map_err(err)?;
    chart
        .draw_series(t.hot.iter().map(|&(lane, a, b)| {
            let (y0, y1) = lane_y(lane);
            Rectangle::new(
                [
                    (a / 1e6, y0 + 0.02),
                    ((b / 1e6).max(a / 1e6 + min_w), y1 - 0.02),
                ],
                HOT.mix(0.35).filled(),
            )
        }))
        .map_err(err)?;
    chart
        .draw_series(t.slices.iter().map(|&(lane, start, dur, fam)| {
            let (y0, y1) = lane_y(lane);
            let x0 = start / 1e6;
            let x1 = x0 + (dur / 1e6).max(min_w);
            Rectangle::new([(x0, y0 + 0.2), (x1, y1 - 0.2)], colour(fam).filled())
        }))
        .map_err(err)?;
    for &(from, left, to, arrived) in &t.transfers {
        let (a0, a1) = lane_y(from);
        let (b0, b1) = lane_y(to);
        let (xa, xb) = (left / 1e6, arrived / 1e6);
        let (ya, yb) = ((a0 + a1) / 2.0, (b0 + b1) / 2.0);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(xa, ya), (xb, yb)],
                ARROW.stroke_width(2),
            )))
            .map_err(err)?;
        chart
            .draw_series([(xa, ya), (xb, yb)].map(|p| Circle::new(p, 4, ARROW.filled())))
            .map_err(err)?;
    }
    // The legend: op families, hot paths, transfers.
    let font = ("sans-serif", 14).into_font();
    let mut x = 16;
    let entries: Vec<(String, ShapeStyle)> = FAMILIES
        .iter()
        .map(|(f, c)| (f.to_string(), c.filled()))
        .chain([
            ("hot path".to_string(), HOT.mix(0.35).filled()),
            ("move between workers".to_string(), ARROW.filled()),
        ])
        .collect();
    for (name, style) in entries {
        legend
            .draw(&Rectangle::new([(x, 12), (x + 14, 26)], style))
            .map_err(err)?;
        legend
            .draw(&Text::new(name.clone(), (x + 19, 12), font.clone()))
            .map_err(err)?;
        x += 30 + (7.4 * name.chars().count() as f64) as i32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
0.000s | #0000 | CONNECT      | WORKER 0                    | -               |          0B | peer=inproc
0.000s | #0001 | CONNECT      | WORKER 1                    | -               |          0B | peer=inproc
0.001s | #0002 | CONNECT      | CLIENT s1 test              | -               |          0B | home=0 workers=2
0.002s | #0003 | RECV         | CLIENT s1 test              | Exec            |         15B | out=t1 op=full([2], 1, float32)
0.002s | #0004 | WORKER_SEND  | WORKER 0                    | Exec            |         20B | out=s1:1 op=full([2], 1, float32)
0.003s | #0005 | EXEC         | WORKER 0                    | Timing          |          0B | key=s1:1 op=full t=0.002500s dur=300.000us
0.004s | #0006 | HOTPATH_START | CLIENT s1 test              | HotPath         |          6B | signature=0000000000000abc len=3 worker=0
0.005s | #0007 | RECV         | CLIENT s1 test              | Exec            |          7B | out=t2 op=matmul inputs=t1,t1
0.005s | #0008 | MODIFIER_INJECT | WORKER 0                    | Send            |          9B | key=s1:1 to=1 xfer=1
0.005s | #0009 | MODIFIER_INJECT | WORKER 1                    | Recv            |          9B | out=s0:1 from=0 xfer=1
0.006s | #0010 | WORKER_SEND  | WORKER 1                    | Exec            |         17B | out=s1:2 op=matmul inputs=s0:1,s0:1
0.008s | #0011 | HOTPATH_END  | CLIENT s1 test              | HotPath         |          6B | signature=0000000000000abc compiled=true worker=0
";

    #[test]
    fn png_and_svg_have_the_expected_size_and_one_lane_per_worker() {
        let lines = parse_all(LOG).unwrap();
        let t = timeline(&lines);
        let workers = t
            .lanes
            .iter()
            .filter(|l| matches!(l, Lane::Worker(_)))
            .count();
        assert_eq!(workers, 2, "{:?}", t.lanes);
        assert_eq!(t.lanes.len(), 3);
        assert_eq!(t.transfers.len(), 1);
        assert_eq!(t.hot.len(), 1);
        let dir = std::env::temp_dir().join(format!("gt-vis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let png = dir.join("t.png");
        let (w, h) = render(&lines, "test", &png, 900).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let (pw, ph) = (
            u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
            u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
        );
        assert_eq!((pw, ph), (w, h));
        assert_eq!(h, 140 + 46 * 3 + 40);
        let svg = dir.join("t.svg");
        render(&lines, "test", &svg, 900).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(
            text.contains(&format!("width=\"{w}\"")) && text.contains(&format!("height=\"{h}\""))
        );
        assert!(text.contains("worker 0") && text.contains("worker 1"));
        assert!(render(&lines, "test", &dir.join("t.gif"), 900).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
