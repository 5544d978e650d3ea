/** CUDA kernels and their JCuda driver-API launchers. */
package org.exl2spark.kernels;
