//! PNG plots of a report, drawn with plotters' bitmap backend and an embedded font (DejaVu
//! Sans Mono, registered at first use), so no system font is needed.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::report::{Report, ReportError};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");

fn font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        if register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            panic!("the embedded font does not load");
        }
    });
}

pub fn all(report: &Report, dir: &Path) -> Result<(), ReportError> {
    font();
    let fail = |path: &Path| {
        let path = path.display().to_string();
        move |e: Box<dyn std::error::Error>| ReportError::Plot {
            path: path.clone(),
            message: e.to_string(),
        }
    };
    let path = dir.join("spread.png");
    spread(report, &path).map_err(fail(&path))?;
    let path = dir.join("hops.png");
    hops(report, &path).map_err(fail(&path))?;
    let path = dir.join("bytes.png");
    bytes(report, &path).map_err(fail(&path))?;
    Ok(())
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

fn title(report: &Report, what: &str) -> String {
    format!("{} (seed {}): {what}", report.scenario, report.seed)
}

fn spread(report: &Report, path: &Path) -> Drawn {
    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let x_max = report.spread.last().map_or(1.0, |p| p.0).max(1.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            title(report, "fraction of nodes holding an update"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max, 0.0..1.02)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the update was made")
        .y_desc("mean fraction of nodes")
        .draw()?;
    chart.draw_series(LineSeries::new(
        report.spread.iter().copied(),
        BLUE.stroke_width(2),
    ))?;
    root.present()?;
    Ok(())
}

fn hops(report: &Report, path: &Path) -> Drawn {
    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = report
        .hop_histogram
        .iter()
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    let n = report.hop_histogram.len().max(2) as u32;
    let mut chart = ChartBuilder::on(&root)
        .caption(title(report, "hops from the origin"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0u32..n, 0u64..max + max / 10 + 1)?;
    chart
        .configure_mesh()
        .x_desc("hops")
        .y_desc("(node, update) pairs")
        .draw()?;
    chart.draw_series(report.hop_histogram.iter().enumerate().map(|(h, c)| {
        let h = h as u32;
        Rectangle::new([(h, 0), (h + 1, *c)], GREEN.mix(0.7).filled())
    }))?;
    root.present()?;
    Ok(())
}

fn bytes(report: &Report, path: &Path) -> Drawn {
    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let kib = |v: &Vec<u64>| -> Vec<f64> {
        let mut v: Vec<f64> = v.iter().map(|b| *b as f64 / 1024.0).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (sent, received) = (kib(&report.bytes_sent), kib(&report.bytes_received));
    let y_max = sent.iter().chain(&received).copied().fold(1.0, f64::max);
    let n = sent.len().max(2) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title(report, "bytes per node (sorted)"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..n, 0.0..y_max * 1.05)?;
    chart
        .configure_mesh()
        .x_desc("nodes, sorted")
        .y_desc("KiB")
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            received.iter().enumerate().map(|(i, v)| (i as f64, *v)),
            BLUE.stroke_width(2),
        ))?
        .label("received")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(
            sent.iter().enumerate().map(|(i, v)| (i as f64, *v)),
            RED.stroke_width(2),
        ))?
        .label("sent")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
