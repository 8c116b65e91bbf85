//! The IGTF namespace constraints of a CA: which subjects it may certify. A CA in the IGTF
//! distribution comes with `<hash>.namespaces` (the EACL form: `TO Issuer "<CA DN>" PERMIT
//! Subject "<regex>"`) and the older `<hash>.signing_policy` (Globus: `access_id_CA X509 '<CA DN>'`,
//! `cond_subjects globus '"<glob>" …'`). Grid middleware refuses a certificate whose subject lies
//! outside its issuer's namespace, so that one CA cannot vouch for another's users; Sloop does the
//! same for the endorser that signs an image list, and for each CA above it.
//!
//! When a CA has neither file, nothing constrains it (as on a laptop with a hand-made CA folder).
//! When it has one, its subject must match a PERMIT rule for that issuer and no DENY rule.

use std::path::{Path, PathBuf};

use regex::Regex;

/// A CA's namespace, read from its policy file.
#[derive(Debug)]
pub struct Namespace {
    /// The file the rules came from (named in refusals).
    pub file: PathBuf,
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    /// The issuer the rule is for; `None` for `SELF` (the CA whose file this is).
    issuer: Option<String>,
    permit: bool,
    subject: Regex,
}

/// A policy file that cannot be read as one: refused as a whole, since guessing could widen it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: line {line}: {problem}")]
pub struct PolicyError {
    pub file: PathBuf,
    pub line: usize,
    pub problem: String,
}

impl PolicyError {
    fn at(file: &Path, line: usize, problem: &str) -> Self {
        Self {
            file: file.to_path_buf(),
            line,
            problem: problem.to_string(),
        }
    }
}

impl Namespace {
    /// The namespace of the CA whose subject hash is `hash` (`{:08x}`) in the anchors folder
    /// `dir`: its `.namespaces` file, else its `.signing_policy`; `None` when it has neither.
    pub fn find(dir: &Path, hash: u32) -> Result<Option<Self>, PolicyError> {
        let namespaces = dir.join(format!("{hash:08x}.namespaces"));
        if let Ok(text) = std::fs::read_to_string(&namespaces) {
            return parse_namespaces(&namespaces, &text).map(Some);
        }
        let signing_policy = dir.join(format!("{hash:08x}.signing_policy"));
        if let Ok(text) = std::fs::read_to_string(&signing_policy) {
            return parse_signing_policy(&signing_policy, &text).map(Some);
        }
        Ok(None)
    }

    /// Whether the CA `issuer` may certify `subject` (both oneline DNs, `/DC=…/CN=…`).
    pub fn permits(&self, issuer: &str, subject: &str) -> bool {
        let applies = |rule: &&Rule| rule.issuer.as_deref().is_none_or(|i| i == issuer);
        let matching: Vec<&Rule> = self
            .rules
            .iter()
            .filter(applies)
            .filter(|r| r.subject.is_match(subject))
            .collect();
        matching.iter().any(|r| r.permit) && !matching.iter().any(|r| !r.permit)
    }
}

/// The EACL form. Logical lines may continue with a trailing `\`; `#` starts a comment.
fn parse_namespaces(file: &Path, text: &str) -> Result<Namespace, PolicyError> {
    let mut rules = Vec::new();
    for (line, statement) in logical_lines(text) {
        let fail = |problem: &str| PolicyError::at(file, line, problem);
        let words = tokens(&statement).map_err(|p| fail(&p))?;
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let (issuer, rest) = match words.as_slice() {
            [to, kw, rest @ ..]
                if to.eq_ignore_ascii_case("TO") && kw.eq_ignore_ascii_case("Issuer") =>
            {
                match rest {
                    [self_kw, rest @ ..] if self_kw.eq_ignore_ascii_case("SELF") => (None, rest),
                    [dn, rest @ ..] => (Some((*dn).to_string()), rest),
                    [] => return Err(fail("TO Issuer names no issuer")),
                }
            }
            _ => {
                return Err(fail(
                    "expected: TO Issuer \"<CA DN>\" PERMIT|DENY Subject \"<pattern>\"",
                ));
            }
        };
        let permit = match rest {
            [verb, kw, _]
                if kw.eq_ignore_ascii_case("Subject") && verb.eq_ignore_ascii_case("PERMIT") =>
            {
                true
            }
            [verb, kw, _]
                if kw.eq_ignore_ascii_case("Subject") && verb.eq_ignore_ascii_case("DENY") =>
            {
                false
            }
            _ => {
                return Err(fail(
                    "expected PERMIT or DENY Subject \"<pattern>\" after the issuer",
                ));
            }
        };
        let pattern = rest[2];
        let subject = Regex::new(&format!("^(?:{pattern})$")).map_err(|_| {
            fail(&format!(
                "the subject pattern {pattern:?} is not a regular expression"
            ))
        })?;
        rules.push(Rule {
            issuer,
            permit,
            subject,
        });
    }
    Ok(Namespace {
        file: file.to_path_buf(),
        rules,
    })
}

/// The Globus form: `access_id_CA X509 '<DN>'`, then `pos_rights globus CA:sign` and
/// `cond_subjects globus '"<glob>" "<glob>"'` for that CA. Globs: `*` any run, `?` one character.
fn parse_signing_policy(file: &Path, text: &str) -> Result<Namespace, PolicyError> {
    let mut rules = Vec::new();
    let mut issuer: Option<String> = None;
    let mut signs = false;
    for (line, statement) in logical_lines(text) {
        let fail = |problem: &str| PolicyError::at(file, line, problem);
        let words = tokens(&statement).map_err(|p| fail(&p))?;
        match words.as_slice() {
            [key, kind, dn] if key == "access_id_CA" && kind.eq_ignore_ascii_case("X509") => {
                issuer = Some(dn.clone());
                signs = false;
            }
            [key, _, rights] if key == "pos_rights" => {
                signs = rights.split_whitespace().any(|r| r == "CA:sign")
            }
            [key, _, globs] if key == "cond_subjects" => {
                let Some(issuer) = issuer.clone() else {
                    return Err(fail("cond_subjects before any access_id_CA"));
                };
                if !signs {
                    continue;
                }
                for glob in tokens(globs).map_err(|p| fail(&p))? {
                    let subject =
                        Regex::new(&format!("^{}$", glob_to_regex(&glob))).map_err(|_| {
                            fail(&format!("the subject pattern {glob:?} cannot be read"))
                        })?;
                    rules.push(Rule {
                        issuer: Some(issuer.clone()),
                        permit: true,
                        subject,
                    });
                }
            }
            _ => return Err(fail("expected access_id_CA, pos_rights or cond_subjects")),
        }
    }
    Ok(Namespace {
        file: file.to_path_buf(),
        rules,
    })
}

/// The file's statements with their first line's number: comments and blank lines dropped,
/// `\`-continued lines joined.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if current.is_none() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        let (continued, body) = match line.strip_suffix('\\') {
            Some(body) => (true, body),
            None => (false, line),
        };
        let entry = current.get_or_insert_with(|| (index + 1, String::new()));
        entry.1.push(' ');
        entry.1.push_str(body);
        if !continued {
            out.extend(current.take());
        }
    }
    out.extend(current);
    out
}

/// Words, where "double" or 'single' quotes make one word of what they enclose.
fn tokens(statement: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = statement.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' || c == '\'' {
            chars.next();
            let mut word = String::new();
            loop {
                match chars.next() {
                    Some(d) if d == c => break,
                    Some(d) => word.push(d),
                    None => return Err("a quote is not closed".into()),
                }
            }
            out.push(word);
        } else {
            let mut word = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_whitespace() || d == '"' || d == '\'' {
                    break;
                }
                word.push(d);
                chars.next();
            }
            out.push(word);
        }
    }
    Ok(out)
}

fn glob_to_regex(glob: &str) -> String {
    let mut out = String::new();
    for c in glob.chars() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "/DC=org/DC=example/CN=Example Grid CA";

    fn namespace(name: &str, text: &str) -> Namespace {
        let file = Path::new(name);
        if name.ends_with(".namespaces") {
            parse_namespaces(file, text).unwrap()
        } else {
            parse_signing_policy(file, text).unwrap()
        }
    }

    #[test]
    fn an_igtf_namespaces_file_permits_its_subjects_only() {
        let ns = namespace(
            "1a2b3c4d.namespaces",
            r#"##############################################################################
#NAMESPACES-VERSION: 1.0
#
# CA alias    : example-grid
TO Issuer "/DC=org/DC=example/CN=Example Grid CA" \
  PERMIT Subject "/DC=org/DC=example/.*"

TO Issuer SELF PERMIT Subject "/DC=org/DC=partner/O=Hosts/.*"
TO Issuer "/DC=org/DC=example/CN=Example Grid CA" \
  DENY Subject "/DC=org/DC=example/O=Banned/.*"
"#,
        );
        assert!(ns.permits(CA, "/DC=org/DC=example/O=Test Grid/CN=Image Endorser"));
        assert!(ns.permits(CA, "/DC=org/DC=partner/O=Hosts/CN=a.example.org"));
        assert!(!ns.permits(CA, "/DC=org/DC=rogue/CN=Image Endorser"));
        assert!(!ns.permits(CA, "/DC=org/DC=example/O=Banned/CN=Mallory"));
        // Patterns match whole subjects, not a part of one.
        assert!(!ns.permits(CA, "/DC=net/DC=org/DC=example/CN=x"));
        // Rules for another issuer say nothing about this one (SELF still applies).
        assert!(!ns.permits("/DC=org/CN=Other CA", "/DC=org/DC=example/CN=x"));
        assert!(ns.permits("/DC=org/CN=Other CA", "/DC=org/DC=partner/O=Hosts/CN=b"));
    }

    #[test]
    fn a_globus_signing_policy_permits_its_cond_subjects() {
        let ns = namespace(
            "1a2b3c4d.signing_policy",
            r#"# EACL for the Example Grid CA
 access_id_CA      X509         '/DC=org/DC=example/CN=Example Grid CA'
 pos_rights        globus        CA:sign
 cond_subjects     globus       '"/DC=org/DC=example/*"  "/O=Example/OU=Hosts/CN=?.example.org"'
"#,
        );
        assert!(ns.permits(CA, "/DC=org/DC=example/O=Test Grid/CN=Image Endorser"));
        assert!(ns.permits(CA, "/O=Example/OU=Hosts/CN=a.example.org"));
        assert!(!ns.permits(CA, "/O=Example/OU=Hosts/CN=ab.example.org"));
        assert!(!ns.permits(CA, "/DC=org/DC=rogue/CN=x"));
        assert!(!ns.permits("/DC=org/CN=Other CA", "/DC=org/DC=example/CN=x"));
    }

    #[test]
    fn a_file_that_cannot_be_read_is_refused_with_its_line() {
        let file = Path::new("x.namespaces");
        let cases = [
            (
                "TO Issuer \"/CN=CA\" ALLOW Subject \"/.*\"",
                1,
                "PERMIT or DENY",
            ),
            (
                "# comment\n\nTO Issuer \"/CN=CA\" PERMIT Subject \"/(.*\"",
                3,
                "not a regular expression",
            ),
            (
                "TO Issuer \"/CN=CA PERMIT Subject \"/.*\"",
                1,
                "quote is not closed",
            ),
            ("PERMIT Subject \"/.*\"", 1, "expected: TO Issuer"),
        ];
        for (text, line, problem) in cases {
            let error = parse_namespaces(file, text).unwrap_err();
            assert_eq!(error.line, line, "{text}");
            assert!(error.problem.contains(problem), "{text}: {error}");
        }
        let error = parse_signing_policy(
            Path::new("x.signing_policy"),
            "cond_subjects globus '\"/*\"'",
        )
        .unwrap_err();
        assert!(error.problem.contains("before any access_id_CA"), "{error}");
    }

    #[test]
    fn a_ca_without_either_file_is_unconstrained_and_namespaces_win_over_signing_policy() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Namespace::find(dir.path(), 0x1a2b3c4d).unwrap().is_none());
        std::fs::write(
            dir.path().join("1a2b3c4d.signing_policy"),
            "access_id_CA X509 '/DC=org/DC=example/CN=Example Grid CA'\npos_rights globus CA:sign\ncond_subjects globus '\"/DC=org/*\"'\n",
        )
        .unwrap();
        let ns = Namespace::find(dir.path(), 0x1a2b3c4d).unwrap().unwrap();
        assert!(ns.permits(CA, "/DC=org/DC=rogue/CN=x"));
        std::fs::write(
            dir.path().join("1a2b3c4d.namespaces"),
            "TO Issuer SELF PERMIT Subject \"/DC=org/DC=example/.*\"\n",
        )
        .unwrap();
        let ns = Namespace::find(dir.path(), 0x1a2b3c4d).unwrap().unwrap();
        assert!(ns.file.ends_with("1a2b3c4d.namespaces"));
        assert!(!ns.permits(CA, "/DC=org/DC=rogue/CN=x"));
    }
}
