fn main() -> std::process::ExitCode {
    dispatch::cli::main_with_args(std::env::args_os())
}
