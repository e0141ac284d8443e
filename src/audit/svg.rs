//! Draws a saga's [`Timeline`] as inline SVG for the HTML report: one lane
//! per step with one bar per step run (retries and throttles marked on it),
//! a lane for waits and operator gates, one for operator actions, and a time
//! axis. Tooltips are SVG `<title>`s: no script is needed.

use super::entry::step_name;
use super::html::escape;
use super::timeline::{MarkKind, Timeline};
use crate::model::Timestamp;
use std::fmt::Write;

const WIDTH: f64 = 960.0;
const LEFT: f64 = 230.0;
const RIGHT: f64 = 20.0;
const LANE: f64 = 26.0;
const BAR: f64 = 16.0;
const TOP: f64 = 8.0;

/// The SVG of one saga's timeline.
pub fn render(t: &Timeline) -> String {
    let t0 = t.first.unwrap_or_default().0;
    let t1 = t.last.unwrap_or_default().0.max(t0 + 1);
    let x = |at: Timestamp| {
        LEFT + (at.0.saturating_sub(t0) as f64) / ((t1 - t0) as f64) * (WIDTH - LEFT - RIGHT)
    };
    let lane_y = |lane: usize| TOP + lane as f64 * LANE;
    // Lanes: steps 1-5, waits and gates, operator.
    let wait_lane = 5;
    let op_lane = 6;
    let height = lane_y(op_lane + 1) + 28.0;
    let mut s = String::with_capacity(4096);
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="saga timeline">"#
    );
    for step in 1..=5u8 {
        let y = lane_y(usize::from(step - 1));
        let _ = write!(
            s,
            r#"<text class="lane" x="4" y="{}">{} {}</text><line class="grid" x1="{LEFT}" x2="{}" y1="{}" y2="{}"/>"#,
            y + BAR - 3.0,
            step,
            escape(step_name(step)),
            WIDTH - RIGHT,
            y + BAR / 2.0,
            y + BAR / 2.0
        );
    }
    let _ = write!(
        s,
        r#"<text class="lane" x="4" y="{}">waits and gates</text><text class="lane" x="4" y="{}">operator</text>"#,
        lane_y(wait_lane) + BAR - 3.0,
        lane_y(op_lane) + BAR - 3.0
    );
    let last = Timestamp(t1);
    for b in &t.bars {
        let y = lane_y(usize::from(b.step.clamp(1, 5) - 1));
        let x0 = x(b.start);
        let w = (x(b.end.unwrap_or(last)) - x0).max(3.0);
        let state = if b.completed {
            "completed"
        } else if b.end.is_none() {
            "open"
        } else {
            "left"
        };
        let _ = write!(
            s,
            r#"<rect class="step {state}" data-step="{}" x="{x0:.1}" y="{y}" width="{w:.1}" height="{BAR}" rx="3"><title>step {} ({}) {state}: {} applied, {} already done, {} failed, {} retries, {} throttled; {} to {}</title></rect>"#,
            b.step,
            b.step,
            escape(step_name(b.step)),
            b.applied,
            b.already_done,
            b.failed,
            b.retries,
            b.throttles,
            b.start,
            b.end.map_or_else(|| "now".to_string(), |e| e.to_string()),
        );
    }
    for sp in &t.spans {
        let y = lane_y(wait_lane);
        let x0 = x(sp.start);
        let w = (x(sp.end.unwrap_or(last)) - x0).max(3.0);
        let class = if sp.gate { "gate" } else { "wait" };
        let _ = write!(
            s,
            r#"<rect class="{class}" x="{x0:.1}" y="{y}" width="{w:.1}" height="{BAR}"><title>{class}: {} (from {})</title></rect>"#,
            escape(&sp.label),
            sp.start
        );
    }
    for m in &t.marks {
        let mx = x(m.at);
        let label = escape(&m.label);
        match m.kind {
            MarkKind::Retry | MarkKind::Throttle => {
                let y = lane_y(usize::from(m.step.unwrap_or(1).clamp(1, 5) - 1));
                let class = if m.kind == MarkKind::Throttle {
                    "throttle"
                } else {
                    "retry"
                };
                let _ = write!(
                    s,
                    r#"<path class="{class}" d="M{mx:.1} {} l5 -7 h-10 z"><title>{class} at {}: {label}</title></path>"#,
                    y + 1.0,
                    m.at
                );
            }
            MarkKind::Operator => {
                let y = lane_y(op_lane) + BAR / 2.0;
                let _ = write!(
                    s,
                    r#"<circle class="operator" cx="{mx:.1}" cy="{y}" r="5"><title>{} {label}</title></circle>"#,
                    m.at
                );
            }
        }
    }
    let axis = lane_y(op_lane + 1) + 6.0;
    let _ = write!(
        s,
        r#"<line class="axis" x1="{LEFT}" x2="{}" y1="{axis}" y2="{axis}"/><text class="tick" x="{LEFT}" y="{}">{}</text><text class="tick end" x="{}" y="{}" text-anchor="end">{}</text></svg>"#,
        WIDTH - RIGHT,
        axis + 16.0,
        Timestamp(t0),
        WIDTH - RIGHT,
        axis + 16.0,
        last
    );
    s
}
