# The Sendan binaries: `sendan` (server and operator CLI) and `sendan-agent` (node-side programs).
#
#   pkgs.callPackage ./nix/package.nix { }
{
  lib,
  rustPlatform,
}:
let
  root = ../.;
in
rustPlatform.buildRustPackage {
  pname = "sendan";
  version = (builtins.fromTOML (builtins.readFile ../Cargo.toml)).workspace.package.version;

  # Only what cargo needs: a change to the Nix files or the docs does not rebuild the binaries.
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../rustfmt.toml
      ../core
      ../raft
      ../api
      ../agents
      ../tests
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  cargoBuildFlags = [
    "--package"
    "sendan-api"
    "--package"
    "sendan-agents"
  ];

  # The test suite starts multi-node clusters and calls nix-instantiate; it runs in CI (`cargo test`), not in the
  # package build.
  doCheck = false;

  meta = {
    description = "Turns one Nix declaration of a bare-metal NixOS cluster into running machines";
    license = lib.licenses.asl20;
    mainProgram = "sendan";
    platforms = lib.platforms.linux;
  };
}
