# Generated names need the member's index (without it, every member would get the same name).
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: pool 'spare': namePattern 'spare' must contain {index}";
  parity = true;
  declaration = lib.recursiveUpdate base {
    pools.spare = {
      class = "worker";
      namePattern = "spare";
      size = 3;
      racks = [ "rack1" ];
      ipPool = "rack1-v4";
    };
  };
}
