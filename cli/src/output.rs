//! Text output for people; `--json` prints the API's JSON instead.

use serde_json::Value;

/// Prints the answer of a command: JSON, or the text of its kind.
pub fn print(value: &Value, json: bool, text: impl Fn(&Value) -> String) {
    if json {
        println!("{value}");
    } else {
        let text = text(value);
        if !text.is_empty() {
            println!("{text}");
        }
    }
}

/// The new id, alone on its line.
pub fn id(value: &Value) -> String {
    value["id"].as_str().unwrap_or_default().to_owned()
}

pub fn entry_line(entry: &Value) -> String {
    format!(
        "{}  {:<8}  {:<5}  {}",
        str(&entry["id"]),
        str(&entry["kind"]),
        str(&entry["lang"]),
        str(&entry["title"])
    )
}

pub fn entry_list(page: &Value) -> String {
    let mut lines: Vec<String> = array(&page["entries"]).iter().map(entry_line).collect();
    if let Some(cursor) = page["next_cursor"].as_str() {
        lines.push(format!("(more: --cursor {cursor})"));
    }
    lines.join("\n")
}

/// Search hits: each entry's line, then its snippet with the matched words in «».
pub fn hits(page: &Value) -> String {
    let mut lines = Vec::new();
    for hit in array(&page["entries"]) {
        lines.push(entry_line(hit));
        let text: Vec<char> = str(&hit["snippet"]["text"]).chars().collect();
        let mut marked = String::new();
        let mut at = 0;
        for range in array(&hit["snippet"]["highlights"]) {
            let start = range[0].as_u64().unwrap_or(0) as usize;
            let end = range[1].as_u64().unwrap_or(0) as usize;
            if start < at || end > text.len() || start > end {
                continue;
            }
            marked.extend(&text[at..start]);
            marked.push('«');
            marked.extend(&text[start..end]);
            marked.push('»');
            at = end;
        }
        marked.extend(&text[at..]);
        lines.push(format!("    {}", marked.replace('\n', " ")));
    }
    if let Some(cursor) = page["next_cursor"].as_str() {
        lines.push(format!("(more: --cursor {cursor})"));
    }
    lines.join("\n")
}

pub fn entry(entry: &Value) -> String {
    let authors: Vec<String> = array(&entry["authors"])
        .iter()
        .map(|a| str(&a["name"]).to_owned())
        .collect();
    let mut text = format!("{}\n", str(&entry["title"]));
    for (label, value) in [
        ("id", str(&entry["id"]).to_owned()),
        ("kind", str(&entry["kind"]).to_owned()),
        ("collection", str(&entry["collection"]).to_owned()),
        ("license", str(&entry["license"]).to_owned()),
        ("lang", str(&entry["lang"]).to_owned()),
        ("tags", strings(&entry["tags"]).join(", ")),
        ("place", str(&entry["place"]["name"]).to_owned()),
        ("authors", authors.join(", ")),
        ("private", entry["private"].to_string()),
        ("heads", strings(&entry["heads"]).join(" ")),
    ] {
        if !value.is_empty() {
            text.push_str(&format!("{label}: {value}\n"));
        }
    }
    text.push('\n');
    text.push_str(str(&entry["body"]));
    text
}

pub fn collections(list: &Value) -> String {
    array(&list["collections"])
        .iter()
        .map(|c| {
            format!(
                "{}  {}  {} entries  {}",
                str(&c["id"]),
                str(&c["name"]),
                c["entries"].as_u64().unwrap_or(0),
                str(&c["title"])
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn peers(list: &Value) -> String {
    array(&list["peers"])
        .iter()
        .map(|p| {
            format!(
                "{}  {}",
                str(&p["peer_id"]),
                strings(&p["addresses"]).join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn status(status: &Value) -> String {
    let listen = strings(&status["listen"])
        .iter()
        .map(|a| format!("\nlisten: {a}"))
        .collect::<String>();
    [
        "peer_id",
        "version",
        "collections",
        "entries",
        "peers",
        "bytes_sent",
        "bytes_received",
    ]
    .iter()
    .map(|key| {
        let value = &status[*key];
        format!(
            "{key}: {}",
            value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned)
        )
    })
    .collect::<Vec<_>>()
    .join("\n")
        + &listen
}

fn str(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

fn array(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

pub fn strings(value: &Value) -> Vec<String> {
    array(value).iter().map(|v| str(v).to_owned()).collect()
}
