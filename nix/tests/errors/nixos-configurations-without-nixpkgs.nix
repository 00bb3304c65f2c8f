# nixosConfigurations needs nixpkgs to call nixosSystem.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: nixosConfigurations needs nixpkgs";
  parity = false;
  declaration = base;
  evaluate = cluster: cluster.nixosConfigurations { };
}
