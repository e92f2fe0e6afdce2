//! PNG copies of the report's SVG figures, for places that do not show SVG (slides, chat,
//! some markdown viewers). Rendered with resvg, with the system's fonts for the labels.

use std::sync::{Arc, OnceLock};

use resvg::{tiny_skia, usvg};

/// Twice the SVG's size, so that the PNG stays sharp on high-density screens.
const SCALE: f32 = 2.0;

fn fonts() -> Arc<usvg::fontdb::Database> {
    static FONTS: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let mut db = usvg::fontdb::Database::new();
            db.load_system_fonts();
            Arc::new(db)
        })
        .clone()
}

/// Whether any font was found; without one the PNGs carry the figures but no text.
pub fn have_fonts() -> bool {
    !fonts().is_empty()
}

/// Renders one SVG document to PNG bytes.
pub fn render(svg: &str) -> Result<Vec<u8>, String> {
    let options = usvg::Options {
        fontdb: fonts(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &options).map_err(|e| format!("parsing SVG: {e}"))?;
    let size = tree
        .size()
        .to_int_size()
        .scale_by(SCALE)
        .ok_or("empty figure")?;
    let mut pixmap =
        tiny_skia::Pixmap::new(size.width(), size.height()).ok_or("figure too large")?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(SCALE, SCALE),
        &mut pixmap.as_mut(),
    );
    pixmap
        .encode_png()
        .map_err(|e| format!("encoding PNG: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A red square on white: the PNG has the SVG's size times two, and red where the square is.
    #[test]
    fn renders_an_svg_to_a_png_of_twice_its_size() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="8">
            <rect x="0" y="0" width="5" height="8" fill="rgb(255,0,0)"/></svg>"#;
        let png = render(svg).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let pixmap = tiny_skia::Pixmap::decode_png(&png).unwrap();
        assert_eq!((pixmap.width(), pixmap.height()), (20, 16));
        let px = |x, y| pixmap.pixel(x, y).unwrap();
        assert_eq!((px(2, 2).red(), px(2, 2).green()), (255, 0));
        assert_eq!((px(15, 2).red(), px(15, 2).green()), (255, 255));
    }

    #[test]
    fn malformed_svg_is_an_error() {
        assert!(render("<svg").is_err());
    }
}
