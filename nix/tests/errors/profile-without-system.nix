# A profile must say what its nodes run.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: profile 'base' must set exactly one of system.flake or system.storePath";
  parity = true;
  declaration = lib.recursiveUpdate base { profiles.base.system.flake = null; };
}
