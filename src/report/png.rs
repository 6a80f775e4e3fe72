//! `-o report.png`: the report's plots ([`super::plots`]) as one PNG image, for
//! slides and chat; the HTML report has the tables.

use super::data::SessionData;
use super::plots::{WIDTH, draw_report, report_height};
use crate::plotting::{PlotError, png_bytes};

/// Renders the plots as a PNG file's bytes.
pub fn render(data: &SessionData, title: &str) -> Result<Vec<u8>, PlotError> {
    png_bytes("the PNG report", (WIDTH, report_height()), |area| {
        draw_report(area, data, title)
    })
}
