# nixosConfigurations takes nixpkgs, disko, modules and specialArgs.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: nixosConfigurations got unknown argument 'pkgs'; known arguments: nixpkgs, disko, modules, specialArgs";
  parity = false;
  declaration = base;
  evaluate =
    cluster:
    cluster.nixosConfigurations {
      nixpkgs.lib.nixosSystem = args: args;
      pkgs = { };
    };
}
