# Installers need bootstrap settings.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: bootstrap is required";
  parity = false;
  declaration = removeAttrs base [ "bootstrap" ];
}
