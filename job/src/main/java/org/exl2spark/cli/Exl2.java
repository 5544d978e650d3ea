package org.exl2spark.cli;

public final class Exl2 {
    public static void main(String[] args) {
        System.out.println("exl2-spark");
    }
}
