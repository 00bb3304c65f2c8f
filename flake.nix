{
  description = "Sendan: one Nix declaration of a bare-metal NixOS cluster, turned into running machines";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  # Thin on purpose: everything lives in nix/. `lib` never touches nixpkgs, so it (and the tests that evaluate it)
  # works without fetching nixpkgs; only the per-system outputs force it.
  outputs =
    { self, nixpkgs, ... }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems =
        f:
        builtins.listToAttrs (
          map (system: {
            name = system;
            value = f system nixpkgs.legacyPackages.${system};
          }) systems
        );
    in
    {
      lib = import ./nix/lib;

      packages = forAllSystems (
        system: pkgs: {
          default = pkgs.callPackage ./nix/package.nix { };
          # The installer netboot image (nix/installer/netboot.nix): bzImage, initrd and the kernel command line
          # its init needs, for `sendan server --boot-dir` (README, "Bootstrap").
          installer-netboot =
            let
              build = self.nixosConfigurations."installer-${system}".config.system.build;
            in
            pkgs.runCommand "sendan-installer-netboot" { } ''
              mkdir -p $out
              ln -s ${build.kernel}/${pkgs.stdenv.hostPlatform.linux-kernel.target} $out/bzImage
              ln -s ${build.netbootRamdisk}/initrd $out/initrd
              echo "init=${build.toplevel}/init ${toString self.nixosConfigurations."installer-${system}".config.boot.kernelParams}" > $out/cmdline
            '';
        }
      );

      # The installer, one per system; `nixosModules.installer` to build your own (with your cluster's CA).
      nixosConfigurations = builtins.listToAttrs (
        map (system: {
          name = "installer-${system}";
          value = nixpkgs.lib.nixosSystem {
            inherit system;
            modules = [ self.nixosModules.installer ];
          };
        }) systems
      );

      nixosModules = {
        server =
          { lib, pkgs, ... }:
          {
            imports = [ ./nix/modules/server.nix ];
            services.sendan.server.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
          };
        nix-agent =
          { lib, pkgs, ... }:
          {
            imports = [ ./nix/modules/nix-agent.nix ];
            services.sendan.nix-agent.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
          };
        node-agent =
          { lib, pkgs, ... }:
          {
            imports = [ ./nix/modules/node-agent.nix ];
            services.sendan.node-agent.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
          };
        installer =
          { lib, pkgs, ... }:
          {
            imports = [ ./nix/installer/netboot.nix ];
            sendan.installer.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
          };
        default = self.nixosModules.server;
      };

      checks = forAllSystems (
        system: pkgs: {
          package = self.packages.${system}.default;
          # Evaluating the example and the pure-eval tests is the check; the derivation only records that it
          # passed. The error-message tests need nix-instantiate's stderr and run under `cargo test`.
          nix-lib =
            let
              results = import ./nix/tests/run.nix;
            in
            assert results.failed == [ ];
            pkgs.runCommand "sendan-nix-lib-tests" { } ''
              echo ${toString (builtins.length results.passed)} checks passed > $out
            '';
        }
      );

      devShells = forAllSystems (
        _: pkgs: {
          default = pkgs.mkShell {
            packages = [
              pkgs.cargo
              pkgs.rustc
              pkgs.rustfmt
              pkgs.clippy
              pkgs.nix
            ];
          };
        }
      );
    };
}
