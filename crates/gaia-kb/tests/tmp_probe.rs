#[test]
fn probe() {
    let mut x: u64 = 1;
    let mut text = String::new();
    while text.len() < 2_000_000 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let w = (x >> 33) % 5000;
        text += &format!("w{w}ord ");
        if (x >> 20) % 12 == 0 { text.push('\n'); }
    }
    for pat in [r"[a-z0-9 ]*w[a-z0-9 ]{20}Q", r"(?-u)[a-z0-9 ]*o[a-z0-9 ]{25}Q", r"(?-u:\w){40}Q", r"(?i)(?:w\d+o|o\w+r){1,20}[a-z ]{15}Q", r"(.*o.{15}){3}Q"] {
        let re = regex::RegexBuilder::new(pat).multi_line(true).crlf(true).size_limit(1 << 20).dfa_size_limit(4 << 20).build();
        let Ok(re) = re else { eprintln!("{pat}: refused"); continue };
        let t = std::time::Instant::now();
        let m = re.is_match(&text);
        let mut n = 0; for l in text.lines() { if re.is_match(l) { n += 1; } }
        eprintln!("{pat}: {m} {n} {:?} per 2MB x2", t.elapsed());
    }
}
