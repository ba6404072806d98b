fn main() -> std::process::ExitCode {
    slogate::cli::main()
}
