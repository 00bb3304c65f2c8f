# A maintenance window on a day that is not one.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: pool 'workers': maintenance window 1 names day 'saturday'; days are mon, tue, wed, thu, fri, sat, sun";
  parity = true;
  declaration = lib.recursiveUpdate base { pools.workers.maintenance = [ { days = [ "saturday" ]; start = "02:00"; minutes = 120; } ]; };
}
