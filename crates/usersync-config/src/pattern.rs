//! Name patterns used by policies: exact names, globs and regular expressions.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A pattern matching group names (or user names, for protected lists).
///
/// Written in config as a string:
/// - `re:<regex>`: a regular expression (Rust `regex` syntax, unanchored unless you anchor it);
/// - a string containing `*`, `?` or `[`: a glob (`Eng*`, `team-?`), matched case-insensitively
///   against the whole name;
/// - anything else: an exact name, compared case-insensitively.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    matcher: Matcher,
}

#[derive(Clone)]
enum Matcher {
    Exact(String),
    Glob(globset::GlobMatcher),
    Regex(regex::Regex),
}

impl Pattern {
    /// Parse a pattern from its config form.
    pub fn parse(source: &str) -> Result<Pattern, String> {
        let matcher = if let Some(re) = source.strip_prefix("re:") {
            Matcher::Regex(
                regex::Regex::new(re).map_err(|e| format!("invalid regex `{re}`: {}", last_line(&e)))?,
            )
        } else if source.contains(['*', '?', '[']) {
            let glob = globset::GlobBuilder::new(source)
                .case_insensitive(true)
                .literal_separator(false)
                .build()
                .map_err(|e| format!("invalid glob `{source}`: {e}"))?;
            Matcher::Glob(glob.compile_matcher())
        } else {
            if source.trim().is_empty() {
                return Err("empty name pattern".into());
            }
            Matcher::Exact(source.to_lowercase())
        };
        Ok(Pattern {
            source: source.to_string(),
            matcher,
        })
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match &self.matcher {
            Matcher::Exact(e) => name.to_lowercase() == *e,
            Matcher::Glob(g) => g.is_match(name),
            Matcher::Regex(r) => r.is_match(name),
        }
    }

    /// The pattern as written in config.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True for a plain (exact) name.
    pub fn is_exact(&self) -> bool {
        matches!(self.matcher, Matcher::Exact(_))
    }
}

/// The last line of a regex error ("error: unclosed group"): the whole message draws the
/// pattern with a caret over several lines, which does not fit a one-line config error.
fn last_line(e: &regex::Error) -> String {
    let m = e.to_string();
    m.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_start_matches("error: ").to_string())
        .unwrap_or(m)
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.source)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Pattern::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

/// A regex replacement applied to group names (`{ regex = "^grp-", with = "" }`).
#[derive(Debug, Clone)]
pub struct Replace {
    /// The compiled regex.
    pub regex: regex::Regex,
    /// The replacement (`$1` etc. refer to capture groups).
    pub with: String,
}

impl PartialEq for Replace {
    fn eq(&self, other: &Self) -> bool {
        self.regex.as_str() == other.regex.as_str() && self.with == other.with
    }
}

impl<'de> Deserialize<'de> for Replace {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            regex: String,
            #[serde(default)]
            with: String,
        }
        let raw = Raw::deserialize(d)?;
        let regex = regex::Regex::new(&raw.regex).map_err(|e| {
            serde::de::Error::custom(format!("invalid regex `{}`: {}", raw.regex, last_line(&e)))
        })?;
        Ok(Replace {
            regex,
            with: raw.with,
        })
    }
}

impl Serialize for Replace {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Replace", 2)?;
        st.serialize_field("regex", self.regex.as_str())?;
        st.serialize_field("with", &self.with)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_glob_and_regex() {
        let e = Pattern::parse("Staff").expect("exact");
        assert!(e.matches("staff") && e.matches("STAFF") && !e.matches("Staffing"));
        let g = Pattern::parse("eng-*").expect("glob");
        assert!(g.matches("ENG-platform") && !g.matches("xeng-a"));
        let r = Pattern::parse("re:^team-[0-9]+$").expect("regex");
        assert!(r.matches("team-42") && !r.matches("team-x"));
        assert!(Pattern::parse("re:(").is_err());
        assert!(Pattern::parse("[").is_err());
    }
}
