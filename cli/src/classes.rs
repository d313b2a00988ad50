//! Names of the classes, for output people read: digits by default, or one name per line from
//! a file (`class-names.txt` in the data directory is picked up automatically).

use std::path::{Path, PathBuf};

/// The file name looked for in a data directory.
pub const DEFAULT_FILE: &str = "class-names.txt";

/// Longest accepted class name, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 64;

/// One name per class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassNames {
    names: Vec<String>,
}

/// Faults of a class-names file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClassNamesError {
    /// The file could not be read.
    #[error("{path}: cannot read the class names: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The content does not name each class once.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl ClassNames {
    /// The classes named by their index: `0`, `1`, …
    pub fn numbered(classes: usize) -> Self {
        Self {
            names: (0..classes).map(|c| c.to_string()).collect(),
        }
    }

    /// Parse one name per line (surrounding whitespace trimmed, trailing empty lines ignored);
    /// there must be exactly `classes` non-empty names of at most 64 characters.
    pub fn parse(text: &str, classes: usize) -> Result<Self, String> {
        let lines: Vec<&str> = text.trim_end().lines().map(str::trim).collect();
        if lines.len() != classes {
            return Err(format!(
                "expected {classes} class names, one per line, found {}",
                lines.len()
            ));
        }
        for (i, name) in lines.iter().enumerate() {
            if name.is_empty() {
                return Err(format!("line {}: empty class name", i + 1));
            }
            if name.chars().count() > MAX_NAME_CHARS {
                return Err(format!(
                    "line {}: class name longer than {MAX_NAME_CHARS} characters",
                    i + 1
                ));
            }
            if name.chars().any(char::is_control) {
                return Err(format!("line {}: control character in class name", i + 1));
            }
        }
        Ok(Self {
            names: lines.into_iter().map(str::to_string).collect(),
        })
    }

    /// Read and [`parse`](Self::parse) a class-names file.
    pub fn load(path: &Path, classes: usize) -> Result<Self, ClassNamesError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClassNamesError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, classes).map_err(|reason| ClassNamesError::Invalid {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// The names from `explicit` if given, else from `dir/class-names.txt` if it exists, else
    /// numbered.
    pub fn resolve(
        explicit: Option<&Path>,
        dir: &Path,
        classes: usize,
    ) -> Result<Self, ClassNamesError> {
        match explicit {
            Some(path) => Self::load(path, classes),
            None => {
                let beside = dir.join(DEFAULT_FILE);
                if beside.is_file() {
                    Self::load(&beside, classes)
                } else {
                    Ok(Self::numbered(classes))
                }
            }
        }
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there are no classes.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of class `c`.
    pub fn name(&self, c: usize) -> &str {
        &self.names[c]
    }

    /// `c` followed by its name when the name is not just the number: `3 (Dress)`.
    pub fn label(&self, c: usize) -> String {
        let name = self.name(c);
        if name == c.to_string() {
            name.to_string()
        } else {
            format!("{c} ({name})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_name_per_line() {
        let n = ClassNames::parse("T-shirt/top\n  Trouser \nPullover\n\n", 3).unwrap();
        assert_eq!(n.name(1), "Trouser");
        assert_eq!(n.label(2), "2 (Pullover)");
        assert_eq!(ClassNames::numbered(3).label(2), "2");
    }

    #[test]
    fn rejects_wrong_count_and_empty_names() {
        assert!(
            ClassNames::parse("a\nb\n", 3)
                .unwrap_err()
                .contains("expected 3")
        );
        assert!(
            ClassNames::parse("a\n\nc", 3)
                .unwrap_err()
                .contains("line 2: empty")
        );
        assert!(
            ClassNames::parse("a\nb\u{7}\nc", 3)
                .unwrap_err()
                .contains("control")
        );
    }
}
