//! One spelling for every choice the crate takes by name (kernels, SIMD paths, samplers,
//! checksum policies, …): `name()`, [`std::str::FromStr`] and [`std::fmt::Display`] are
//! generated from a single list per enum by [`named!`], and the checkpoint format, the
//! environment variables and the command line all read and write those names. The `cli`
//! feature derives clap's `ValueEnum` for the same enums (for the `--help` texts of their
//! doc comments); a test checks that clap spells every value as `name()` does.

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
            type Err = $crate::names::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.trim();
                Self::NAMED
                    .iter()
                    .copied()
                    .find(|v| v.name().eq_ignore_ascii_case(s))
                    .ok_or_else(|| $crate::names::UnknownName {
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
pub(crate) use named;

#[cfg(all(test, feature = "cli"))]
mod tests {
    use clap::ValueEnum;

    /// clap's spelling of every value is `name()`, and `name()` parses back.
    fn same_names<T: ValueEnum + std::str::FromStr + PartialEq + std::fmt::Debug + Copy>(
        named: &[T],
        name: impl Fn(T) -> &'static str,
    ) where
        T::Err: std::fmt::Debug,
    {
        assert_eq!(named.len(), T::value_variants().len());
        for &v in named {
            let clap_name = v.to_possible_value().unwrap().get_name().to_string();
            assert_eq!(clap_name, name(v));
            assert_eq!(name(v).parse::<T>().unwrap(), v);
            assert_eq!(name(v).to_uppercase().parse::<T>().unwrap(), v);
        }
    }

    #[test]
    fn clap_spells_every_value_as_name_does() {
        use crate::{batch, dataset, kernels, preprocess};
        same_names(kernels::KernelKind::NAMED, kernels::KernelKind::name);
        same_names(kernels::SimdChoice::NAMED, kernels::SimdChoice::name);
        same_names(kernels::ClipGradient::NAMED, kernels::ClipGradient::name);
        same_names(batch::ShuffleKind::NAMED, batch::ShuffleKind::name);
        same_names(
            dataset::ChecksumPolicy::NAMED,
            dataset::ChecksumPolicy::name,
        );
        same_names(preprocess::Invert::NAMED, preprocess::Invert::name);
    }

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
