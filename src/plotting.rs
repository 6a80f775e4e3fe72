//! What the report's and eval's plots share on top of `plotters`: the font compiled
//! into the binary, drawing into an SVG string or a PNG, colours written as hex, and
//! one error type.
//!
//! Text is laid out (SVG) and rasterised (PNG) with DejaVu Sans cut down to Latin-1
//! and some punctuation (`assets/fonts/`, licence there), registered as `sans-serif`,
//! so no system fonts or font libraries are needed. SVG viewers draw the text with
//! their own sans-serif font.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;

/// DejaVu Sans, subset (see `assets/fonts/README.md`).
const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans-subset.ttf");

/// The family every plot's text uses.
pub const FAMILY: &str = "sans-serif";

/// A plot that could not be drawn (a font or backend failure, not bad data).
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {what}: {message}")]
pub struct PlotError {
    /// Which plot.
    pub what: String,
    /// The drawing library's message.
    pub message: String,
}

impl PlotError {
    /// Wraps a `plotters` (or encoder) error for the plot `what`.
    pub fn new(what: &str, e: impl std::fmt::Display) -> Self {
        Self {
            what: what.to_string(),
            message: e.to_string(),
        }
    }
}

/// Result of the drawing functions, generic over the backend.
pub type Drawn<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Registers the compiled-in font as [`FAMILY`] (once per process).
fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(PlotError::new(
            "text",
            "the compiled-in font is not a valid TrueType font",
        ))
    }
}

/// Draws with `draw` onto a white `width`×`height` SVG and returns the document
/// (`<svg …>…</svg>\n`). A non-empty `class` is set on the `<svg>` element so that
/// stylesheets (the HTML report's) can size it.
pub fn svg_string(
    what: &str,
    (width, height): (u32, u32),
    class: &str,
    draw: impl for<'a> FnOnce(&DrawingArea<SVGBackend<'a>, Shift>) -> Drawn<SVGBackend<'a>>,
) -> Result<String, PlotError> {
    ensure_font()?;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| PlotError::new(what, e))?;
        draw(&root).map_err(|e| PlotError::new(what, e))?;
        root.present().map_err(|e| PlotError::new(what, e))?;
    }
    if !class.is_empty() {
        out = out.replacen("<svg ", &format!("<svg class=\"{class}\" "), 1);
    }
    Ok(out)
}

/// Draws with `draw` onto a white `width`×`height` RGB bitmap and returns it as a
/// PNG file's bytes.
pub fn png_bytes(
    what: &str,
    (width, height): (u32, u32),
    draw: impl for<'a> FnOnce(&DrawingArea<BitMapBackend<'a>, Shift>) -> Drawn<BitMapBackend<'a>>,
) -> Result<Vec<u8>, PlotError> {
    ensure_font()?;
    let mut pixels = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        draw(&root).map_err(|e| PlotError::new(what, e))?;
        root.present().map_err(|e| PlotError::new(what, e))?;
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(&pixels))
        .map_err(|e| PlotError::new(what, e))?;
    Ok(out)
}

/// `#rrggbb` → colour (grey for anything else).
pub fn hex(colour: &str) -> RGBColor {
    let v = u32::from_str_radix(colour.trim_start_matches('#'), 16).unwrap_or(0x88_88_88);
    RGBColor((v >> 16) as u8, (v >> 8) as u8, v as u8)
}

/// Text style of `size` px in the plots' font.
pub fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().into()
}

/// Bold text of `size` px (the PNG draws it with the regular face; SVG viewers
/// embolden it).
pub fn bold(size: u32) -> TextStyle<'static> {
    (FAMILY, size, FontStyle::Bold).into_font().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_and_png_hold_what_was_drawn() {
        let draw_svg = |area: &DrawingArea<SVGBackend, Shift>| {
            area.draw(&Rectangle::new(
                [(10, 10), (30, 30)],
                hex("#d83b3b").filled(),
            ))?;
            area.draw_text("a < b", &font(14), (40, 10))
        };
        let svg = svg_string("test", (100, 50), "plot t", draw_svg).expect("svg");
        assert!(svg.starts_with("<svg class=\"plot t\" "), "{svg}");
        assert!(
            svg.contains("fill=\"#D83B3B\"") && svg.contains("a &lt; b"),
            "{svg}"
        );
        assert!(svg.trim_end().ends_with("</svg>"));

        let png = png_bytes("test", (100, 50), |area| {
            area.draw(&Rectangle::new(
                [(10, 10), (30, 30)],
                hex("#d83b3b").filled(),
            ))?;
            area.draw_text("Hello", &font(14), (40, 10))
        })
        .expect("png");
        let mut reader = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .expect("decodes");
        let mut px = vec![0; reader.output_buffer_size().expect("size")];
        reader.next_frame(&mut px).expect("frame");
        let at = |x: usize, y: usize| &px[(y * 100 + x) * 3..(y * 100 + x) * 3 + 3];
        assert_eq!(at(20, 20), [0xd8, 0x3b, 0x3b], "the rectangle");
        assert_eq!(at(5, 5), [255, 255, 255], "white background");
        // The text was rasterised: dark pixels right of the rectangle.
        let dark = (40..100)
            .flat_map(|x| (10..30).map(move |y| (x, y)))
            .filter(|&(x, y)| at(x, y)[0] < 128)
            .count();
        assert!(dark > 20, "{dark} dark text pixels");
    }

    #[test]
    fn hex_colours() {
        assert_eq!(hex("#f2c200"), RGBColor(0xf2, 0xc2, 0x00));
        assert_eq!(hex("nonsense"), RGBColor(0x88, 0x88, 0x88));
    }
}
