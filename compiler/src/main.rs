use clap::Parser;

fn main() {
    let cli = fomo_ad::cli::Cli::parse();
    if let Err(error) = fomo_ad::cli::run(cli) {
        eprintln!("error: {error}");
        std::process::exit(2);
    }
}
