# The flake's outputs are lazy in nixpkgs: `lib` (and the module functions) evaluate with a nixpkgs that throws
# when touched, and the example runs through the flake's `lib` to the same spec as through nix/lib directly.
let
  flake = import ../../../flake.nix;
  outputs = flake.outputs {
    self = outputs;
    nixpkgs = throw "the flake forced nixpkgs while evaluating lib";
  };
  systems = [ "aarch64-linux" "x86_64-linux" ];
in
{
  exampleThroughTheFlakeLib = {
    expr = (outputs.lib.mkCluster (import ../../examples/declaration.nix)).spec == import ../../examples/spec.nix;
    expected = true;
  };
  perSystemOutputsNameTheirSystemsWithoutNixpkgs = {
    expr = map builtins.attrNames [ outputs.packages outputs.checks outputs.devShells ];
    expected = [ systems systems systems ];
  };
  nixosModules = {
    expr = builtins.mapAttrs (_: builtins.isFunction) outputs.nixosModules;
    expected = {
      default = true;
      installer = true;
      nix-agent = true;
      node-agent = true;
      server = true;
    };
  };
  # One installer per system, named without forcing nixpkgs.
  installers = {
    expr = builtins.attrNames outputs.nixosConfigurations;
    expected = [
      "installer-aarch64-linux"
      "installer-x86_64-linux"
    ];
  };
  nixpkgsInput = {
    expr = flake.inputs.nixpkgs.url;
    expected = "github:NixOS/nixpkgs/nixos-25.05";
  };
}
