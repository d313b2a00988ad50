//! One spelling for every choice the crate takes by name (kernels, SIMD paths, samplers,
//! checksum policies, …): `name()`, [`std::str::FromStr`] and [`std::fmt::Display`] are
//! generated from a single list per enum by [`named!`], and the checkpoint format, the
//! environment variables and the command line all read and write those names. The `clap`
//! feature derives clap's `ValueEnum` for the same enums (for the `--help` texts of their
//! doc comments); a test of the binaries' crate checks that clap spells every value as
//! `name()` does.

/// A name that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{got:?} is not a {what} (one of {choices})")]
pub struct UnknownName {
    /// What was given.
    pub got: String,
    /// What it should have named ("kernel", "SIMD path", …).
    pub what: &'static str,
    /// The accepted names, comma-separated.
    pub choices: String,
}

/// `named!(Type, "what", [Variant => "name", …])`: `Type::name()`, `Type::NAMED` (every value
/// in list order), `FromStr` (ASCII case-insensitive, surrounding blanks ignored) and `Display`.
/// Exported (hidden) for the cli crate's own named choices, so they parse and print alike.
#[doc(hidden)]
#[macro_export]
macro_rules! named {
    ($t:ty, $what:literal, [$($v:ident => $n:literal),+ $(,)?]) => {
        impl $t {
            /// Every value, in the order of its names.
            pub const NAMED: &'static [$t] = &[$(<$t>::$v),+];

            /// The value's name, as the command line, the environment and checkpoints spell it.
            pub fn name(self) -> &'static str {
                match self {
                    $(<$t>::$v => $n),+
                }
            }
        }

        impl std::str::FromStr for $t {
            type Err = $crate::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.trim();
                Self::NAMED
                    .iter()
                    .copied()
                    .find(|v| v.name().eq_ignore_ascii_case(s))
                    .ok_or_else(|| $crate::UnknownName {
                        got: s.to_string(),
                        what: $what,
                        choices: Self::NAMED
                            .iter()
                            .map(|v| v.name())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}
pub(crate) use crate::named;

#[cfg(test)]
mod tests {
    #[test]
    fn an_unknown_name_lists_the_choices() {
        let e = "fast"
            .parse::<crate::compute::kernels::ClipGradient>()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"fast\" is not a gradient rule (one of zero, through)"
        );
    }
}
