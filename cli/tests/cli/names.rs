//! The command line parses the library's named choices with clap's `ValueEnum` (feature
//! `clap` of the library), and checkpoints, environment variables and messages use `name()`:
//! both must spell every value the same way.

use clap::ValueEnum;
use mnist_logreg::{batch, dataset, kernels};
use mnist_logreg_cli::preprocess;

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
