//! The charts the CLI writes (SVG, through plotters): per-query differences between runs
//! (`ferret eval --plot`) and a measure over a tuning grid (`ferret tune --plot`).

use std::path::Path;

use plotters::prelude::*;

const WIN: RGBColor = RGBColor(0x13, 0x73, 0x33);
const LOSS: RGBColor = RGBColor(0xb0, 0x00, 0x20);
const TIE: RGBColor = RGBColor(0x99, 0x99, 0x99);
const HELD_OUT: RGBColor = RGBColor(0xd9, 0x5f, 0x02);

/// One compared run: its name and, per query, its value minus the first run's.
pub struct Deltas {
    pub run: String,
    pub deltas: Vec<f64>,
}

fn chart_error(path: &Path) -> impl Fn(String) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("drawing {}: {e}", path.display())
}

/// The "win/loss" chart of IR papers, one panel per compared run: a bar per query, sorted by
/// gain, green above zero, red below, ties a thin grey mark on the axis.
pub fn query_deltas(
    path: &Path,
    baseline: &str,
    measure: &str,
    runs: &[Deltas],
) -> anyhow::Result<()> {
    let err = chart_error(path);
    let root = SVGBackend::new(path, (1000, 320 * runs.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    for (panel, r) in root.split_evenly((runs.len(), 1)).iter().zip(runs) {
        let mut sorted = r.deltas.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let zeros = vec![0.0; r.deltas.len()];
        let (wins, ties, losses) = ferret_eval::compare::wins_ties_losses(&r.deltas, &zeros);
        let top = sorted.iter().fold(1e-9f64, |m, d| m.max(d.abs()));
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!(
                    "{} − {baseline}: {measure} per query ({wins} wins, {ties} ties, {losses} losses)",
                    r.run
                ),
                ("sans-serif", 15),
            )
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..sorted.len().max(1) as f64, -top * 1.05..top * 1.05)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|x| format!("{x:.0}"))
            .x_desc("queries, sorted by difference")
            .y_desc(format!("Δ {measure}"))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(sorted.iter().enumerate().map(|(i, d)| {
                let (color, h) = if d.abs() < ferret_eval::compare::TIE {
                    (TIE, top * 0.004)
                } else if *d > 0.0 {
                    (WIN, *d)
                } else {
                    (LOSS, *d)
                };
                let x = i as f64;
                Rectangle::new([(x + 0.1, 0.0), (x + 0.9, h)], color.filled())
            }))
            .map_err(|e| err(e.to_string()))?;
    }
    root.present().map_err(|e| err(e.to_string()))
}

/// Where the settings of a tuning grid sit on the x axis: the values of its one numeric
/// parameter, or their order in the grid.
pub enum GridAxis {
    Numeric { name: String, values: Vec<f64> },
    Ordinal { count: usize },
}

/// The first measure over the grid: on the training split, and on the held-out split when
/// given; the chosen setting is marked.
pub fn tuning(
    path: &Path,
    measure: &str,
    axis: &GridAxis,
    train: &[f64],
    held_out: Option<&[f64]>,
    best: usize,
) -> anyhow::Result<()> {
    let err = chart_error(path);
    let (xs, x_desc): (Vec<f64>, String) = match axis {
        GridAxis::Numeric { name, values } => (values.clone(), name.clone()),
        GridAxis::Ordinal { count } => (
            (0..*count).map(|i| i as f64).collect(),
            "setting (grid order, as printed)".into(),
        ),
    };
    let all = train.iter().chain(held_out.unwrap_or(&[]));
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(*v), h.max(*v))
    });
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let (x0, x1) = xs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(*v), h.max(*v))
        });
    let xpad = ((x1 - x0) * 0.03).max(1e-6);
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{measure} over the tuning grid"),
            ("sans-serif", 16),
        )
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0 - xpad..x1 + xpad, lo - pad..hi + pad)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(measure)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let mut lines = vec![("training split", train, BLUE)];
    if let Some(h) = held_out {
        lines.push(("held-out split", h, HELD_OUT));
    }
    for (label, values, color) in lines {
        let mut points: Vec<(f64, f64)> = xs.iter().copied().zip(values.iter().copied()).collect();
        points.sort_by(|p, q| p.0.total_cmp(&q.0));
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(|e| err(e.to_string()))?;
    }
    chart
        .draw_series([Circle::new(
            (xs[best], train[best]),
            7,
            BLACK.stroke_width(2),
        )])
        .map_err(|e| err(e.to_string()))?
        .label("chosen on the training split")
        .legend(|(x, y)| Circle::new((x + 9, y), 5, BLACK.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bars of each colour in an SVG chart (plotters writes a filled rectangle per bar).
    fn bars(svg: &str, color: &RGBColor) -> usize {
        let fill = format!("fill=\"#{:02X}{:02X}{:02X}\"", color.0, color.1, color.2);
        svg.lines()
            .filter(|l| l.starts_with("<rect") && l.contains(&fill))
            .count()
    }

    #[test]
    fn one_bar_per_query_coloured_by_the_sign_of_its_difference() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.svg");
        let deltas = vec![0.5, -0.25, 0.0, 0.0, 0.1];
        query_deltas(
            &path,
            "bm25",
            "nDCG@10",
            &[Deltas {
                run: "rm3".into(),
                deltas,
            }],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            (bars(&svg, &WIN), bars(&svg, &TIE), bars(&svg, &LOSS)),
            (2, 2, 1)
        );
        assert!(svg.contains("rm3 − bm25: nDCG@10 per query (2 wins, 2 ties, 1 losses)"));
    }

    #[test]
    fn a_tuning_chart_marks_the_chosen_setting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.svg");
        let axis = GridAxis::Numeric {
            name: "alpha".into(),
            values: vec![0.0, 0.5, 1.0],
        };
        tuning(
            &path,
            "nDCG@10",
            &axis,
            &[0.6, 0.7, 0.65],
            Some(&[0.58, 0.66, 0.67]),
            1,
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        for text in [
            "training split",
            "held-out split",
            "chosen on the training split",
            "alpha",
        ] {
            assert!(svg.contains(text), "{text}");
        }
        assert!(tuning(&path, "x", &GridAxis::Ordinal { count: 1 }, &[0.5], None, 0).is_ok());
    }
}
