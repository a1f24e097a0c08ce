// SPDX-License-Identifier: GPL-2.0
//! ioctl ABI and control-input validation shared by sysfs and the ioctl.

use selfmig_proto::uapi::*;

#[test]
fn ioctl_numbers_match_linux_encoding() {
    // _IOW(0xB9, 1, 64 bytes), _IOR(0xB9, 2, 80 bytes), _IO(0xB9, 3)
    assert_eq!(IOC_START, 0x4040_B901);
    assert_eq!(IOC_STATUS, 0x8050_B902);
    assert_eq!(IOC_ABORT, 0x0000_B903);
    assert_eq!(ioc_decode(IOC_STATUS), (0xB9, 2, 80));
}

#[test]
fn endpoints() {
    assert_eq!(
        Endpoint::parse(b"10.0.0.2:7000\n"),
        Ok(Endpoint {
            addr: [10, 0, 0, 2],
            port: 7000
        })
    );
    for bad in [
        &b""[..],
        b"10.0.0.2",
        b"10.0.0:1",
        b"10.0.0.2.1:5",
        b"10.0.0.256:5",
        b"a.b.c.d:5",
        b"10.0.0.2:",
        b"10.0.0.2:x",
        b"10..0.2:5",
        b"0010.0.0.2:5",
    ] {
        assert_eq!(
            Endpoint::parse(bad),
            Err(ControlError::BadEndpointSyntax),
            "{:?}",
            core::str::from_utf8(bad)
        );
    }
    assert_eq!(
        Endpoint::parse(b"10.0.0.2:0"),
        Err(ControlError::PortOutOfRange)
    );
    assert_eq!(
        Endpoint::parse(b"10.0.0.2:65536"),
        Err(ControlError::PortOutOfRange)
    );
    for bad in [
        &b"0.0.0.0:5"[..],
        b"127.0.0.1:5",
        b"224.0.0.1:5",
        b"255.255.255.255:5",
    ] {
        assert_eq!(Endpoint::parse(bad), Err(ControlError::UnusableAddress));
    }
    assert_eq!(ControlError::UnusableAddress.errno(), EADDRNOTAVAIL);
    let ep = Endpoint::parse(b"10.0.0.2:7000").unwrap();
    assert_eq!(ep.to_string(), "10.0.0.2:7000");
    assert_eq!(
        Endpoint::parse_listen(b"0.0.0.0:7000"),
        Ok(Endpoint {
            addr: [0; 4],
            port: 7000
        })
    );
    assert_eq!(
        Endpoint::parse_listen(b"10.1.2.3:1"),
        Ok(Endpoint {
            addr: [10, 1, 2, 3],
            port: 1
        })
    );
    assert_eq!(
        Endpoint::parse_listen(b"0.0.0.0:0"),
        Err(ControlError::PortOutOfRange)
    );
    assert_eq!(
        Endpoint::parse_listen(b"239.1.1.1:5"),
        Err(ControlError::UnusableAddress)
    );
    assert_eq!(
        Endpoint::parse_listen(b"x:5"),
        Err(ControlError::BadEndpointSyntax)
    );
    assert_eq!(ControlError::PortOutOfRange.errno(), ERANGE);
}

#[test]
fn numbers_bools_tokens() {
    assert_eq!(parse_u32_in(b" 50\n", 1, 100), Ok(50));
    assert_eq!(
        parse_u32_in(b"0", 1, 100),
        Err(ControlError::NumberOutOfRange)
    );
    assert_eq!(parse_u32_in(b"-1", 1, 100), Err(ControlError::BadNumber));
    assert_eq!(
        parse_u32_in(b"99999999999999999999", 1, 100),
        Err(ControlError::BadNumber)
    );
    assert_eq!(parse_bool(b"1\n"), Ok(true));
    assert_eq!(parse_bool(b"n"), Ok(false));
    assert_eq!(parse_bool(b"yes"), Err(ControlError::BadBool));

    let mut out = [0u8; MAX_TOKEN_LEN];
    assert_eq!(parse_hex_token(b"00fFa1\n", &mut out), Ok(3));
    assert_eq!(&out[..3], &[0x00, 0xff, 0xa1]);
    assert_eq!(
        parse_hex_token(b"abc", &mut out),
        Err(ControlError::BadToken)
    );
    assert_eq!(
        parse_hex_token(b"zz", &mut out),
        Err(ControlError::BadToken)
    );
    assert_eq!(
        parse_hex_token(b"\n", &mut out),
        Err(ControlError::BadToken)
    );
    let max = vec![b'a'; 2 * MAX_TOKEN_LEN];
    assert_eq!(parse_hex_token(&max, &mut out), Ok(MAX_TOKEN_LEN));
    let over = vec![b'a'; 2 * MAX_TOKEN_LEN + 2];
    assert_eq!(
        parse_hex_token(&over, &mut out),
        Err(ControlError::TokenTooLong)
    );
    assert_eq!(ControlError::TokenTooLong.errno(), E2BIG);
}

fn good_start() -> StartArgs {
    StartArgs {
        size: StartArgs::SIZE as u32,
        flags: START_VERIFY,
        target: Endpoint {
            addr: [10, 0, 0, 2],
            port: 7000,
        },
        max_downtime_ms: 0,
        token_len: 16,
        token_ptr: 0x7fff_0000,
        ..Default::default()
    }
}

#[test]
fn start_args_round_trip_and_validation() {
    let a = good_start();
    assert_eq!(StartArgs::from_bytes(&a.to_bytes()), a);
    assert_eq!(a.validate(), Ok(()));
    let check = |f: &dyn Fn(&mut StartArgs)| {
        let mut a = good_start();
        f(&mut a);
        a.validate()
    };
    assert_eq!(check(&|a| a.size = 56), Err(ControlError::BadStructSize));
    assert_eq!(
        check(&|a| a.flags = 1 << 7),
        Err(ControlError::UnknownFlags)
    );
    assert_eq!(
        check(&|a| a.reserved[3] = 1),
        Err(ControlError::ReservedNotZero)
    );
    assert_eq!(
        check(&|a| a.reserved0 = 1),
        Err(ControlError::ReservedNotZero)
    );
    assert_eq!(
        check(&|a| a.target.port = 0),
        Err(ControlError::PortOutOfRange)
    );
    assert_eq!(
        check(&|a| a.target.addr = [0; 4]),
        Err(ControlError::UnusableAddress)
    );
    assert_eq!(
        check(&|a| a.max_downtime_ms = 60_001),
        Err(ControlError::NumberOutOfRange)
    );
    assert_eq!(
        check(&|a| a.token_len = 1025),
        Err(ControlError::TokenTooLong)
    );
    assert_eq!(check(&|a| a.token_len = 0), Err(ControlError::NoToken));
}

#[test]
fn status_round_trip() {
    let mut s = StatusArgs::idle();
    s.state = State::Precopy;
    s.round = 3;
    s.bytes_sent = 1 << 40;
    s.total_ms = 77;
    assert_eq!(StatusArgs::from_bytes(&s.to_bytes()), Some(s));
    let mut b = s.to_bytes();
    b[4] = 200;
    assert_eq!(StatusArgs::from_bytes(&b), None);
    assert!(State::Precopy.is_running() && !State::Failed.is_running());
}
