//! The `lbsim` command: a thin shell over the library (see `lbsim --help`).

fn main() -> std::process::ExitCode {
    lbsim::cli::main()
}
