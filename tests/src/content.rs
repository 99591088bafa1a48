//! The seeded generator of realistic practices that the load and network benchmarks share, so
//! every benchmark (and the side-by-side one against samod) syncs the same kind of content:
//! Spanish titles, Markdown bodies of 0.5–5 KiB with lists, steps and paragraphs, 1–3 tags, a
//! place, and 1–3 edit sessions per entry.

use serde_json::{Value, json};

/// xorshift64*: small, fast, and the same sequence on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64, stream: u64) -> Rng {
        // splitmix64 of (seed, stream), never zero.
        let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.range(0, items.len() - 1)]
    }
}

const VERBS: &[&str] = &[
    "Cómo preparar",
    "Sembrar",
    "Cuidar",
    "Cosechar",
    "Guardar",
    "Proteger",
    "Recuperar",
    "Mejorar",
    "Multiplicar",
    "Elaborar",
];
const OBJECTS: &[&str] = &[
    "abono de lombriz",
    "semillas de quinua",
    "papa nativa",
    "maíz morocho",
    "chochos",
    "habas",
    "el suelo de ladera",
    "bocashi",
    "purín de ortiga",
    "biol",
    "oca y mashua",
    "cuyes",
    "el agua de riego",
    "plantas medicinales",
    "frutales andinos",
];
const QUALIFIERS: &[&str] = &[
    "en la chacra",
    "con la luna",
    "en tiempo de heladas",
    "sin químicos",
    "entre vecinos",
    "en terrazas",
    "para la minga",
    "en el huerto familiar",
    "antes de las lluvias",
    "como nos enseñaron los abuelos",
];
const PLACES: &[&str] = &[
    "Otavalo",
    "Cotacachi",
    "Guamote",
    "Saraguro",
    "Colta",
    "Zumbahua",
    "Cayambe",
    "Alausí",
    "Riobamba",
    "Pujilí",
];
const TAGS: &[&str] = &[
    "suelo",
    "abono",
    "semillas",
    "agua",
    "riego",
    "heladas",
    "plagas",
    "quinua",
    "papa",
    "maíz",
    "chocho",
    "animales",
    "medicina",
    "calendario",
    "minga",
    "cosecha",
    "almacenamiento",
    "agroecología",
    "huerto",
    "frutales",
];
const SUBJECTS: &[&str] = &[
    "la tierra",
    "el abono",
    "la semilla",
    "el agua",
    "la comunidad",
    "la abuela",
    "el técnico",
    "la helada",
    "la lombriz",
    "la cosecha",
    "el surco",
    "la familia",
];
const PREDICATES: &[&str] = &[
    "necesita descansar después de cada ciclo",
    "se prepara mejor con materiales de la propia finca",
    "debe revisarse cada semana, sobre todo en verano",
    "cambia según la altura y el tipo de suelo",
    "se comparte en la minga de los sábados",
    "aguanta mejor cuando se cubre con paja",
    "da más cuando se siembra en asociación con otras plantas",
    "se guarda en un lugar seco, oscuro y ventilado",
    "pierde fuerza si se deja al sol",
    "se mide con la mano, no con la balanza",
    "cuesta poco y rinde mucho",
    "era parte del calendario de nuestros mayores",
];
const CONNECTORS: &[&str] = &[
    "Además,",
    "Por eso",
    "En cambio,",
    "Según la experiencia,",
    "Cuando llueve,",
    "Así",
];

/// One sentence, with its full stop and a space.
fn sentence(rng: &mut Rng, out: &mut String) {
    if rng.range(0, 2) == 0 {
        out.push_str(rng.pick(CONNECTORS));
        out.push(' ');
        out.push_str(rng.pick(SUBJECTS));
    } else {
        let subject = rng.pick(SUBJECTS);
        let mut chars = subject.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out.push(' ');
    out.push_str(rng.pick(PREDICATES));
    out.push_str(". ");
}

/// A Markdown body of `target` bytes or a sentence more: a list of materials, numbered steps
/// and paragraphs, now and then a quote.
fn markdown(rng: &mut Rng, target: usize) -> String {
    let mut out = String::with_capacity(target + 200);
    out.push_str("## Lo que se necesita\n\n");
    for _ in 0..rng.range(2, 4) {
        out.push_str("- ");
        out.push_str(rng.pick(OBJECTS));
        out.push('\n');
    }
    out.push_str("\n## Cómo se hace\n\n");
    let mut step = 1;
    while out.len() < target {
        if step <= 6 && rng.range(0, 1) == 0 {
            out.push_str(&step.to_string());
            out.push_str(". ");
            sentence(rng, &mut out);
            out.push('\n');
            step += 1;
        } else if rng.range(0, 5) == 0 {
            out.push_str("\n> *");
            sentence(rng, &mut out);
            out.push_str("*\n\n");
        } else {
            out.push('\n');
            for _ in 0..rng.range(2, 5) {
                if out.len() >= target {
                    break;
                }
                sentence(rng, &mut out);
            }
            out.push_str("\n\n");
        }
    }
    out
}

/// Practice number `i` of a run as the JSON of `POST /api/v1/entries`: the same for a given
/// seed, whichever thread sends it.
pub fn practice(seed: u64, i: u64, collection: &str) -> Value {
    let mut rng = Rng::new(seed, i);
    let title = format!(
        "{} {} {} ({})",
        rng.pick(VERBS),
        rng.pick(OBJECTS),
        rng.pick(QUALIFIERS),
        rng.pick(PLACES)
    );
    // 0.5–5 KiB once the last sentence is in.
    let target = rng.range(512, 5 * 1024 - 128);
    let body = markdown(&mut rng, target);
    let mut tags: Vec<&str> = Vec::with_capacity(3);
    let wanted = rng.range(1, 3);
    while tags.len() < wanted {
        let tag = rng.pick(TAGS);
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    json!({
        "collection": collection,
        "kind": "practice",
        "title": title,
        "body": body,
        "license": "CC-BY-SA-4.0",
        "lang": "es",
        "tags": tags,
        "place": rng.pick(PLACES),
    })
}

/// The bodies of practice `i`'s later edit sessions, in order: none, one or two (so 1–3 sessions
/// with the creation), each appending a short paragraph to the body before it.
pub fn later_sessions(seed: u64, i: u64, body: &str) -> Vec<String> {
    let mut rng = Rng::new(seed ^ 0x5E55_1015, i);
    let sessions = rng.range(0, 2);
    let mut bodies = Vec::with_capacity(sessions);
    let mut current = body.to_owned();
    for _ in 0..sessions {
        current = edited_body(&mut rng, &current);
        bodies.push(current.clone());
    }
    bodies
}

/// `body` with one more sentence, as the benchmarks' small edits make it.
pub fn small_edit(seed: u64, k: u64, body: &str) -> String {
    let mut rng = Rng::new(seed ^ 0xED17, k);
    let mut addition = String::new();
    sentence(&mut rng, &mut addition);
    format!("{body}\n\n{}", addition.trim_end())
}

fn edited_body(rng: &mut Rng, body: &str) -> String {
    let mut paragraph = String::new();
    for _ in 0..rng.range(1, 3) {
        sentence(rng, &mut paragraph);
    }
    format!("{}\n\n{}\n", body.trim_end(), paragraph.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn practices_are_seeded_and_sized() {
        assert_eq!(later_sessions(7, 42, "b"), later_sessions(7, 42, "b"));
        assert_eq!(small_edit(7, 1, "b"), small_edit(7, 1, "b"));
        assert_eq!(practice(7, 42, "c"), practice(7, 42, "c"));
        assert_ne!(practice(7, 42, "c"), practice(7, 43, "c"));
        for i in 0..2000 {
            let p = practice(1, i, "c");
            let body = p["body"].as_str().expect("a body");
            assert!(
                (512..=5 * 1024).contains(&body.len()),
                "body of {} bytes",
                body.len()
            );
            let tags = p["tags"].as_array().expect("tags").len();
            assert!((1..=3).contains(&tags));
            let later = later_sessions(1, i, body);
            assert!(later.len() <= 2);
            assert!(later.iter().all(|b| b.len() > body.len()));
        }
    }
}
