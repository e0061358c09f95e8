//! The demo products' pictures: a few hundred bytes of SVG each, one
//! silhouette per kind of product in the product's colour, sent inline as
//! `data:image/svg+xml,…` so the cards need no image files (the widget
//! accepts `data:image` URLs for images, and the pages' CSP allows them).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Shoe,
    Hoodie,
    Sock,
    Jacket,
    Pack,
    Bottle,
}

fn outline(shape: Shape) -> &'static str {
    match shape {
        Shape::Shoe => "<path d='M14 50c12-2 24-14 32-22 6 6 14 9 28 10 14 1 28 7 30 14 1 4-2 7-7 7H20c-8 0-12-4-6-9z'/><rect x='14' y='58' width='92' height='5' fill='#f4f4f4'/>",
        Shape::Hoodie => "<path d='M46 10 28 18 14 42l12 5 6-11v36h56V36l6 11 12-5-14-24-18-8c-2 7-8 11-14 11s-12-4-14-11z'/><rect x='48' y='50' width='24' height='10' rx='3' fill='#ffffff' opacity='.25'/>",
        Shape::Sock => "<path d='M46 8h24v34l16 12c8 6 4 18-6 18H56c-8 0-12-5-12-12z'/><rect x='46' y='8' width='24' height='8' fill='#ffffff' opacity='.35'/>",
        Shape::Jacket => "<path d='M46 10 28 16 14 44l12 4 6-10v34h56V38l6 10 12-4-14-28-18-6-14 8z'/><path d='M60 20v52' stroke='#000000' stroke-opacity='.35' stroke-width='2'/>",
        Shape::Pack => "<rect x='36' y='10' width='48' height='62' rx='12'/><rect x='44' y='40' width='32' height='22' rx='5' fill='#000000' opacity='.2'/>",
        Shape::Bottle => "<rect x='50' y='6' width='20' height='10' rx='2' fill='#444444'/><rect x='44' y='16' width='32' height='58' rx='8'/>",
    }
}

/// The picture of one product, ready for a card's `image`.
pub fn data_uri(shape: Shape, colour: &str) -> String {
    let svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 120 80'><rect width='120' height='80' fill='#f3f1ec'/><g fill='{colour}'>{}</g></svg>",
        outline(shape)
    );
    format!("data:image/svg+xml,{}", escape(&svg))
}

/// Percent-encodes what a data URL may not hold as is (`#` would start a
/// fragment; `<`, `>`, spaces and quotes are not URL characters).
fn escape(svg: &str) -> String {
    let mut out = String::with_capacity(svg.len() + svg.len() / 4);
    for b in svg.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~'/=:;,()!*?".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_small_distinct_escaped_svg() {
        let shapes = [Shape::Shoe, Shape::Hoodie, Shape::Sock, Shape::Jacket, Shape::Pack, Shape::Bottle];
        let uris: Vec<String> = shapes.iter().map(|s| data_uri(*s, "#2b5fa8")).collect();
        for (i, uri) in uris.iter().enumerate() {
            assert!(uri.starts_with("data:image/svg+xml,%3Csvg%20xmlns="), "{uri}");
            assert!(uri.len() < 1200, "{} bytes", uri.len());
            assert!(!uri.contains(['#', '<', '>', ' ', '"']), "{uri}");
            assert!(uri.contains("%232b5fa8"), "the colour is kept: {uri}");
            assert!(uris.iter().skip(i + 1).all(|o| o != uri));
        }
        assert_ne!(data_uri(Shape::Shoe, "#2b5fa8"), data_uri(Shape::Shoe, "#c0392b"));
    }
}
