/// See [`slogate::Allocator`].
#[global_allocator]
static ALLOCATOR: slogate::Allocator = slogate::Allocator;

fn main() -> std::process::ExitCode {
    slogate::tune_allocator();
    slogate::cli::main()
}
