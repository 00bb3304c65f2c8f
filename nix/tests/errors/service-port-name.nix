# A port name that cannot become the suffix of SENDAN_PORT_<NAME>.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: service 'web': port name 'Admin-Port' must start with a lower-case letter and hold only lower-case letters, digits and '_'";
  parity = true;
  declaration = lib.recursiveUpdate base { services.web.ports.Admin-Port = { }; };
}
